"""A detector's backbone (with its FPN) run by ONNX Runtime, for CPU inference.

The backbone is the convolution-heavy part of Faster R-CNN. Exported (in memory, from
the current weights) and run by ONNX Runtime, which fuses batch norm into the
convolutions and has faster CPU kernels; ``benchmarks/engine_latency.py`` measures whole
``predict`` calls with and without it, side by side (docs/benchmarks.md). The RPN and ROI
heads stay in PyTorch: their output sizes depend on the data, and the engine needs the
ROI softmax rows (``ProbabilityRoIHeads``). Its threads do not spin-wait between runs,
so they leave the cores to PyTorch's heads.

Only for fixed weights: the session is a snapshot of the weights at export time.
"""

from __future__ import annotations

import io
import warnings
from collections import OrderedDict

import torch


class OnnxBackbone(torch.nn.Module):
    """Drop-in for ``model.backbone`` at inference: (B, 3, H, W) -> ordered feature maps."""

    def __init__(self, backbone: torch.nn.Module, threads: int | None = None) -> None:
        import onnxruntime

        super().__init__()
        self.out_channels = backbone.out_channels
        probe = torch.zeros(1, 3, 64, 64)
        was_training = backbone.training
        backbone.eval()
        try:
            with torch.no_grad():
                self.names = list(backbone(probe).keys())
            graph = io.BytesIO()
            with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    backbone, (probe,), graph, dynamo=False, opset_version=17,
                    input_names=["images"], output_names=[f"level_{name}" for name in self.names],
                    dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}},
                )
        finally:
            backbone.train(was_training)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            graph.getvalue(), options, providers=["CPUExecutionProvider"]
        )

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        outputs = self.session.run(None, {"images": images.contiguous().numpy()})
        return OrderedDict((name, torch.from_numpy(out)) for name, out in zip(self.names, outputs, strict=True))
