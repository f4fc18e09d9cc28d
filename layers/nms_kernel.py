"""The suppression mask of `greedy_nms` as one Triton kernel: IoU, threshold and bit packing fused, so no K x K
float matrix is ever written (the eager form makes about 30 elementwise passes over G x K x K entries).
Imported only on CUDA (layers/postprocessing.py dispatches to it); its tests run it on a CPU under TRITON_INTERPRET=1.
"""
import torch
import triton
import triton.language as tl


@triton.jit
def _suppression_bits_kernel(boxes_ptr, out_ptr, K, BYTES, iou_thresh,
                             BLOCK_J: tl.constexpr, BLOCK_BYTES: tl.constexpr):
    group = tl.program_id(0)
    j = tl.program_id(1) * BLOCK_J + tl.arange(0, BLOCK_J)  # rows: the box that may be suppressed
    i = tl.program_id(2) * BLOCK_BYTES * 8 + tl.arange(0, BLOCK_BYTES * 8)  # columns: the earlier box
    row_ok, col_ok = j < K, i < K
    base = boxes_ptr + group * K * 4
    jx1 = tl.load(base + j * 4, mask=row_ok, other=0.0)
    jy1 = tl.load(base + j * 4 + 1, mask=row_ok, other=0.0)
    jx2 = tl.load(base + j * 4 + 2, mask=row_ok, other=0.0)
    jy2 = tl.load(base + j * 4 + 3, mask=row_ok, other=0.0)
    ix1 = tl.load(base + i * 4, mask=col_ok, other=0.0)
    iy1 = tl.load(base + i * 4 + 1, mask=col_ok, other=0.0)
    ix2 = tl.load(base + i * 4 + 2, mask=col_ok, other=0.0)
    iy2 = tl.load(base + i * 4 + 3, mask=col_ok, other=0.0)
    # the same operations in the same order as layers.pairwise_box_iou, so the comparison is bit for bit the same
    width = tl.maximum(tl.minimum(jx2[:, None], ix2[None, :]) - tl.maximum(jx1[:, None], ix1[None, :]), 0.0)
    height = tl.maximum(tl.minimum(jy2[:, None], iy2[None, :]) - tl.maximum(jy1[:, None], iy1[None, :]), 0.0)
    inter = width * height
    area_j = (jx2 - jx1) * (jy2 - jy1)
    area_i = (ix2 - ix1) * (iy2 - iy1)
    iou = inter / (area_j[:, None] + area_i[None, :] - inter)
    hit = (iou > iou_thresh) & (i[None, :] < j[:, None]) & col_ok[None, :]
    bits = hit.to(tl.int32) << (tl.arange(0, BLOCK_BYTES * 8) % 8)[None, :]
    packed = tl.sum(tl.reshape(bits, (BLOCK_J, BLOCK_BYTES, 8)), axis=2)
    byte = tl.program_id(2) * BLOCK_BYTES + tl.arange(0, BLOCK_BYTES)
    tl.store(out_ptr + group * K * BYTES + j[:, None] * BYTES + byte[None, :], packed.to(tl.uint8),
             mask=row_ok[:, None] & (byte < BYTES)[None, :])


def suppression_bits_triton(boxes: torch.Tensor, iou_thresh: float, block_j: int = 32,
                            block_bytes: int = 8) -> torch.Tensor:
    """boxes [G, K, 4] float32 (K a multiple of 8) -> uint8 [G, K, K/8], exactly `layers.suppression_bits`."""
    groups, k, _ = boxes.shape
    if k % 8:
        raise ValueError(f"the number of boxes per group must be a multiple of 8, got {k}")
    boxes = boxes.float().contiguous()
    out = torch.empty(groups, k, k // 8, dtype=torch.uint8, device=boxes.device)
    grid = (groups, triton.cdiv(k, block_j), triton.cdiv(k // 8, block_bytes))
    # no fused multiply-add: the areas and the union round exactly as the eager operations do
    _suppression_bits_kernel[grid](boxes, out, k, k // 8, float(iou_thresh), BLOCK_J=block_j,
                                   BLOCK_BYTES=block_bytes, enable_fp_fusion=False)
    return out
