"""Analytics: warnings from the verified stream, rules, forecasts."""
