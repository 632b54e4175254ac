"""rainlm command line."""
