"""What operators see: structured logs (``logging``) and Prometheus metrics (``metrics``)."""
