"""The audit trail: every server request, its search trace, policy decision and review."""
