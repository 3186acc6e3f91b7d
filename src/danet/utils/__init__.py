"""Small helpers that any part of danet may use: devices, progress, file writes."""
