"""MobileNet v1's shape, shared by the torch model and the numpy/ONNX builder (no torch here)."""

# (output channels at alpha=1, stride) of the 13 depthwise-separable blocks, as in the paper.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
STEM_CHANNELS = 32
