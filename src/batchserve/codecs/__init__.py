"""Request and response formats: v2 tensors, images, labels and top-k."""
