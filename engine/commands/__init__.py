"""One module per `mesbridge` command; each turns errors into messages and exit codes."""
