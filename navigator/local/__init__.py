"""``navigator local``: a manager and one edge per kubeconfig context, in one command."""
