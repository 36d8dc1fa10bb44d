"""What goes out: messages, RViz markers, TF, bird's-eye plots."""
