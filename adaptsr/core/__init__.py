"""What every method shares and that knows no method (issue 31's first room): for now the error types."""
