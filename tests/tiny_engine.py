"""Engine settings shrunk for a 2-core CPU (128 px input, few proposals and sampled
ROIs). The model code paths are the production ones."""

TINY = {
    "min_size": 128,
    "max_size": 128,
    "batch_size": 2,
    "warmup_iters": 2,
    "rpn_proposals_train": 200,
    "rpn_proposals_test": 100,
    "roi_batch_size_per_image": 64,
    "num_threads": 2,
    "seed": 0,
}
TINY_TORCHVISION = {**TINY, "architecture": "mobilenet_v3_large_fpn", "lr": 0.005}
