"""One module per `histo-renn` sub-command; cli.py registers them."""
