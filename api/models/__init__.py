"""Request and response models, one module per resource, in Create/Public variants."""
