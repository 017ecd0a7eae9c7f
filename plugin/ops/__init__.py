"""What operators see: status, Prometheus metrics, their HTTP routes and the CLI."""
