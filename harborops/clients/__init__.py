"""HTTP/S3 clients harborops speaks, each with its own error types."""
