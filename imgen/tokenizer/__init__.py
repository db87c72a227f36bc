"""The image tokenizer: 128x128 images <-> an 8x8 coarse token grid plus a 16x16 detail token grid.

The coarse grid alone decodes to a blurry preview (layout and colours); coarse
plus detail decode to the full image. Quantisation is FSQ (no learned codebook),
applied at two scales with the detail grid coding the residual of the coarse one.

    from imgen.tokenizer import VQTokenizer, VQ_SIZES
    model = VQTokenizer(VQ_SIZES["small"]).eval()
    grids = model.encode(images_uint8)             # TokenGrids(coarse (B, 8, 8), detail (B, 16, 16))
    preview = model.decode(grids.coarse)           # (B, 3, 128, 128) in [0, 1]
    full = model.decode(grids.coarse, grids.detail)

Training lives in `imgen.tokenizer.train` (imported on demand: it pulls in the world renderer).
"""

from imgen.tokenizer.config import VQ_SIZES, VQConfig, vq_config
from imgen.tokenizer.fsq import FSQ
from imgen.tokenizer.model import Reconstruction, TokenGrids, VQTokenizer

__all__ = ["FSQ", "VQ_SIZES", "Reconstruction", "TokenGrids", "VQConfig", "VQTokenizer", "vq_config"]
