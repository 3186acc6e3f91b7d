"""Looking inside a trained model: attention diagnostics and the paper's attention maps."""
