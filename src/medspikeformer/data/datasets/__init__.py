"""One module per published dataset layout; each registers its source class."""
