"""Identity and access: organisations, members, logins, API keys and grants (the kernel's part).

SQL and credential handling live here so that the API and the command line (bootstrapping the
first operator admin) share them; ``api/`` turns them into HTTP.
"""
