"""Exported models (ONNX, TFLite; fp32 or INT8, :mod:`adaptsr.cli.export`) and bare networks behind the few model
methods that :class:`adaptsr.api.Runner`, ``adaptsr-infer`` and the bench use; no cost is counted and there are no
routing maps."""
import numpy as np
import torch

from adaptsr.core.errors import LoadError
from adaptsr.deploy.tflite_export import TFLiteRunner


class _ExportedModel:
    """The few model methods ``adaptsr-infer`` uses, for an exported model: no cost is counted (``gflops`` empty)
    and there are no maps."""
    device = torch.device('cpu')
    val_opt = {'cost': False}

    def feed_data(self, data):
        self.lq = data['lq']

    def cost_metric_values(self):
        return {}

    def save_extra_images(self, sr_path, sr_img=None):
        return []

    @staticmethod
    def _check_scale(path, found, scale):
        if found != int(found) or (scale is not None and int(found) != scale):
            raise LoadError(f'{path}: upscales x{found:g}' + (f', not x{scale} (--scale)' if scale else ''))
        return int(found)


class OnnxModel(_ExportedModel):
    """An exported ONNX model (fp32 or INT8, :mod:`adaptsr.cli.export`) run by onnxruntime on the CPU, ``threads``
    intra-op threads.

    Raises:
        LoadError: not a single-input model, or a scale that is not an integer or not ``scale``.
    """

    def __init__(self, path, threads=None, scale=None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise LoadError(f'{path}: expected a model with one input, found {[i.name for i in inputs]}')
        self.input_name = inputs[0].name
        # an fp16 export (adaptsr-export --fp16) takes and returns float16: fed and read back as float32 pixels
        self.input_dtype = np.float16 if inputs[0].type == 'tensor(float16)' else np.float32
        probe = self.session.run(None, {self.input_name: np.zeros((1, 3, 8, 8), self.input_dtype)})[0]
        self.scale = self._check_scale(path, probe.shape[-1] / 8, scale)

    def test(self):
        out = self.session.run(None, {self.input_name: self.lq.cpu().numpy().astype(self.input_dtype)})[0]
        self.output = torch.from_numpy(out.astype(np.float32))


class TFLiteModel(_ExportedModel):
    """An exported TFLite model (fp32 or full-integer INT8, :mod:`adaptsr.cli.export`) run by the LiteRT interpreter,
    any image size by tiles of the model's fixed input (:class:`adaptsr.deploy.tflite_export.TFLiteRunner`).

    Raises:
        LoadError: not a fixed-shape RGB SR model, the LiteRT runtime missing, or a scale other than ``scale``.
    """

    def __init__(self, path, threads=None, scale=None):
        try:
            self.runner = TFLiteRunner(path, threads)
        except (ImportError, ValueError) as err:
            raise LoadError(str(err)) from err
        self.scale = self._check_scale(path, float(self.runner.scale), scale)

    def test(self):
        self.output = self.runner(self.lq.cpu().float())


class NetworkModel(_ExportedModel):
    """A bare PyTorch network (e.g. the exported form of a checkpoint, :meth:`adaptsr.core.checkpoints.Descriptor.
    deploy`) behind the same methods: the whole image in one forward, no tiles, no cost counted.

    Args:
        net (nn.Module): (N, 3, h, w) in [0, 1] -> (N, 3, h s, w s), eval mode. scale (int): its scale s.
    """

    def __init__(self, net, scale):
        self.net, self.scale = net, int(scale)

    @torch.no_grad()
    def test(self):
        self.output = self.net(self.lq)

