"""The TAO grounding_dino experiment config as pydantic models (TAO names, defaults and metadata).

Field list, defaults and metadata follow TAO's generated grounding_dino schemas
(notes/tao.md §1; ../shared/reference/tao/grounding_dino/*.schema.json); descriptions are TAO's.
Differences from TAO, each deliberate:
  - `model.backbone` also accepts `resnet_18` (ours: a small backbone for the CPU preset).
  - `model.allow_partial_load` (ours): load a checkpoint that does not fill the network exactly.
  - `dataset.eval_class_ids` defaults to None (= all categories) and `dataset.train_data_sources` to []
    at run time; TAO's schema shows placeholders ([1], two empty sources) that are kept as
    `schema_default` so our generated schema matches TAO's.
  - `dataset.augmentation.fixed_random_crop` defaults to None (TAO's dataclass default: no Large
    Scale Jittering); its schema default is TAO's 1024.
  - rate-like parameters carry `x_log_scale` and finite `x_search_min`/`x_search_max` for the
    default search mode (TAO ignores `x_` keys).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import field_validator

from gdino.config.automl import AutoMLConfig, MLflowConfig
from gdino.config.fields import INF, StrictModel, TaoSection, section, tao_field


class TensorRTConfig(TaoSection):
    """Hyper parameters to configure the TensorRT Engine builder."""

    workspace_size: int = tao_field(
        8192, value_type='int', title='Max workspace size',
        description="The size (in MB) of the workspace TensorRT has\n                    to run it's optimization tactics and generate the\n                    TensorRT engine.",
        valid_min=0)
    min_batch_size: int = tao_field(
        1, value_type='int', title='Min batch size',
        description='The minimum batch size in the optimization profile for\n                    the input tensor of the TensorRT engine.',
        valid_min=1, popular=True)
    opt_batch_size: int = tao_field(
        1, value_type='int', title='Optimum batch size',
        description='The optimum batch size in the optimization profile for\n                    the input tensor of the TensorRT engine.',
        valid_min=1, popular=True)
    max_batch_size: int = tao_field(
        4, value_type='int', title='Maximum batch size',
        description='The maximum batch size in the optimization profile for\n                    the input tensor of the TensorRT engine.',
        valid_min=1)
    layers_precision: list[str] = tao_field(
        default_factory=lambda: [], value_type='list', title='layers_precision',
        description='The list to specify layer precision.', automl_enabled=False)
    data_type: Literal['FP32', 'FP16'] = tao_field(
        'FP32', value_type='categorical', title='data type',
        description='The precision to be set for building the TensorRT engine.',
        valid_options=['FP32', 'FP16'])


class GenTrtEngineConfig(TaoSection):
    """Configurable parameters to construct the TensorRT engine builder for a Grounding DINO experiment."""

    results_dir: str = tao_field(
        '', value_type='string', title='Results directory',
        description='\n        Path to where all the assets generated from a task are stored.\n        ')
    gpu_id: int = tao_field(
        0, value_type='int', title='GPU ID',
        description='The index of the GPU to build the TensorRT engine.', valid_min=0, popular=True)
    onnx_file: str = tao_field(
        '???', value_type='string', title='ONNX file',
        description='\n        Path to the ONNX model file.\n        ')
    trt_engine: str = tao_field(
        '???', value_type='string', title='TensorRT engine',
        description='Path to the TensorRT engine generated should be stored.\n                    This only works with :code:`tao-deploy`.')
    timing_cache: str = tao_field(
        '', value_type='string', title='TensorRT timing cache',
        description='Path to a TensorRT timing cache that speeds up engine generation.\n                    This will be created/read/updated.')
    batch_size: int = tao_field(
        -1, value_type='int', title='Batch size',
        description='The batch size of the input Tensor for the engine.\n                    A value of :code:`-1` implies dynamic tensor shapes.',
        valid_min=-1, popular=True)
    verbose: bool = tao_field(
        False, value_type='bool', title='Verbose', description='Flag to enable verbose TensorRT logging.')
    tensorrt: TensorRTConfig = section(
        TensorRTConfig, title='TensorRT hyper params.',
        description='Hyper parameters to configure the TensorRT Engine builder.')


class ExportConfig(TaoSection):
    """Configurable parameters to construct the exporter for a Grounding DINO experiment."""

    results_dir: str = tao_field(
        '', value_type='string', title='Results directory',
        description='\n        Path to where all the assets generated from a task are stored.\n        ')
    gpu_id: int = tao_field(
        0, value_type='int', title='GPU ID',
        description='The index of the GPU to build the TensorRT engine.')
    checkpoint: str = tao_field(
        '???', value_type='string', title='checkpoint',
        description='Path to the checkpoint file to run export.')
    onnx_file: str = tao_field(
        '???', value_type='string', title='onnx file',
        description='\n        Path to the onnx model file.\n        ')
    on_cpu: bool = tao_field(
        False, value_type='bool', title='on cpu', description='Flag to export CPU compatible model.')
    input_channel: Literal[1, 3] = tao_field(
        3, value_type='ordered_int', title='input channel',
        description='Number of channels in the input Tensor.', valid_min=1, valid_options=[1, 3])
    input_width: int = tao_field(
        960, value_type='int', title='input width', description='Width of the input image tensor.',
        valid_min=32)
    input_height: int = tao_field(
        544, value_type='int', title='input height', description='Height of the input image tensor.',
        valid_min=32)
    opset_version: int = tao_field(
        17, value_type='int', title='opset version',
        description='Operator set version of the ONNX model used to generate\n                    the TensorRT engine.',
        valid_min=1)
    batch_size: int = tao_field(
        -1, value_type='int', title='batch size',
        description='The batch size of the input Tensor for the engine.\n                    A value of :code:`-1` implies dynamic tensor shapes.',
        valid_min=-1)
    verbose: bool = tao_field(
        False, value_type='bool', title='verbose', description='Flag to enable verbose TensorRT logging.')
    format: Literal['onnx', 'xdl'] = tao_field(
        'onnx', value_type='categorical', title='export format', description='File format to export to.',
        valid_options=['onnx', 'xdl'])
    serialize_nvdsinfer: bool = tao_field(
        False, value_type='bool', title='Serialize DeepStream config.',
        description='Flag to enable serializing the required\n                    configs for integrating with DeepStream.')


class InferenceConfig(TaoSection):
    """Configurable parameters to construct the inferencer for a Grounding DINO experiment."""

    num_gpus: int = tao_field(
        1, value_type='int', title='Number of GPUs',
        description='The number of GPUs to run the inference job.', valid_min=1, popular=True)
    gpu_ids: list[int] = tao_field(
        default_factory=lambda: [0], value_type='list', title='GPU IDs',
        description='\n        List of GPU IDs to run the inference on. The length of this list\n        must be equal to the number of gpus in inference.num_gpus.',
        automl_enabled=False, popular=True)
    num_nodes: int = tao_field(
        1, value_type='int', title='Number of nodes',
        description='Number of nodes to run the inference on. If > 1, then multi-node is enabled.',
        valid_min=1, popular=True)
    checkpoint: str = tao_field(
        '???', value_type='string', title='Checkpoint path',
        description='Path to the checkpoint used for inference.')
    trt_engine: str = tao_field(
        '', value_type='string', title='TensorRT Engine',
        description='Path to the TensorRT engine to be used for inference.\n                    This only works with :code:`tao-deploy`.')
    results_dir: str = tao_field(
        '', value_type='string', title='Results directory',
        description='\n        Path to where all the assets generated from a task are stored.\n        ')
    batch_size: int = tao_field(
        -1, value_type='int', title='batch size',
        description='The batch size of the input Tensor. This is important if batch_size > 1 for large dataset.',
        valid_min=-1)
    conf_threshold: float = tao_field(
        0.5, value_type='float', title='confidence threshold',
        description='The value of the confidence threshold to be used when\n                    filtering out the final list of boxes.')
    is_internal: bool = tao_field(
        False, value_type='bool', title='is internal',
        description='Flag to render with internal directory structure.')
    input_width: int = tao_field(
        960, value_type='int', title='input width', description='Width of the input image tensor.',
        valid_min=32)
    input_height: int = tao_field(
        544, value_type='int', title='input height', description='Height of the input image tensor.',
        valid_min=32)
    outline_width: int = tao_field(
        3, value_type='int', title='outline width',
        description='Width in pixels of the bounding box outline.', valid_min=1)
    color_map: Optional[dict[str, str]] = tao_field(
        None, value_type='collection', title='color map',
        description='Class-wise dictionary with colors to render boxes.', automl_enabled=False)


class EvaluateConfig(TaoSection):
    """Configurable parameters to construct the evaluator for a Grounding DINO experiment."""

    num_gpus: int = tao_field(
        1, value_type='int', title='Number of GPUs',
        description='The number of GPUs to run the evaluation job.', valid_min=1, popular=True)
    gpu_ids: list[int] = tao_field(
        default_factory=lambda: [0], value_type='list', title='GPU IDs',
        description='\n        List of GPU IDs to run the evaluation on. The length of this list\n        must be equal to the number of gpus in evaluate.num_gpus.',
        automl_enabled=False, popular=True)
    num_nodes: int = tao_field(
        1, value_type='int', title='Number of nodes',
        description='Number of nodes to run the evaluation on. If > 1, then multi-node is enabled.',
        valid_min=1, popular=True)
    checkpoint: str = tao_field(
        '???', value_type='string', title='Checkpoint path',
        description='Path to the checkpoint used for evaluation.')
    trt_engine: str = tao_field(
        '', value_type='string', title='TensorRT Engine',
        description='Path to the TensorRT engine to be used for evaluation.\n                    This only works with :code:`tao-deploy`.')
    results_dir: str = tao_field(
        '', value_type='string', title='Results directory',
        description='\n        Path to where all the assets generated from a task are stored.\n        ')
    batch_size: int = tao_field(
        -1, value_type='int', title='batch size',
        description='The batch size of the input Tensor. This is important if batch_size > 1 for large dataset.',
        valid_min=-1)
    conf_threshold: float = tao_field(
        0.0, value_type='float', title='confidence threshold',
        description='The value of the confidence threshold to be used when\n                    filtering out the final list of boxes.')
    input_height: Optional[int] = tao_field(
        None, value_type='int', title='input height', description='Height of the input image tensor.',
        valid_min=1)
    input_width: Optional[int] = tao_field(
        None, value_type='int', title='input width', description='Width of the input image tensor.',
        valid_min=1)


class QuantizeConfig(TaoSection):
    """Configurable parameters to run model quantization for a Grounding DINO experiment."""

    backend: Literal['modelopt.pytorch', 'torchao', 'modelopt.onnx'] = tao_field(
        'torchao', value_type='categorical', title='Quantization backend',
        description='The quantization backend to use',
        valid_options=['modelopt.pytorch', 'torchao', 'modelopt.onnx'])
    mode: Literal['static_ptq', 'weight_only_ptq'] = tao_field(
        'weight_only_ptq', value_type='categorical', title='Quantization mode',
        description='The quantization mode to use', valid_options=['static_ptq', 'weight_only_ptq'])
    algorithm: Literal['minmax', 'max', 'entropy', 'awq_clip', 'awq_lite', 'awq_full', 'rtn_dq'] = tao_field(
        'minmax', value_type='categorical', title='Calibration algorithm',
        description='Calibration/optimization algorithm. Used by ModelOpt backends (modelopt.pytorch and modelopt.onnx). Ignored by torchao backend.',
        valid_options=['minmax', 'max', 'entropy', 'awq_clip', 'awq_lite', 'awq_full', 'rtn_dq'])
    layers: list[Any] = tao_field(
        default_factory=lambda: [], value_type='list', title='Layer quantization configs',
        description='List of per-module quantization configurations. Each entry specifies which modules to quantize and their data types. This is the primary way to configure quantization.',
        automl_enabled=False)
    skip_names: list[str] = tao_field(
        default_factory=lambda: [], value_type='list', title='Skip names',
        description='List of module/layer names or patterns to exclude from quantization',
        automl_enabled=False)
    model_path: str = tao_field(
        '', value_type='string', title='Model path',
        description='Path to the model to be quantized. For ONNX backend, path to ONNX file.', required=True)
    results_dir: str = tao_field(
        '', value_type='string', title='Results directory',
        description='Path to where all the assets generated from a task are stored.', required=True)
    backend_kwargs: dict[str, Any] = tao_field(
        default_factory=dict, value_type='collection', title='Backend kwargs',
        description='Additional keyword arguments to pass to the backend', automl_enabled=False)
    device: str = tao_field(
        'cuda', value_type='string', title='Calibration device',
        description="Device to use for calibration. Accepts 'cuda' (uses default GPU), 'cpu', 'trt' (TensorRT for ONNX backend), or specific GPU device like 'cuda:0', 'cuda:1', etc. If 'cuda' is specified but no GPU is available, the framework will automatically fall back to 'cpu'. Note: 'trt' is only supported by the modelopt.onnx backend for ONNX Runtime with TensorRT execution provider.",
        pattern='^(cuda|cpu|trt|cuda:[0-9]+)$')


class OptimConfig(TaoSection):
    """Hyper parameters to configure the optimizer."""

    optimizer: Literal['AdamW', 'SGD'] = tao_field(
        'AdamW', value_type='categorical', description='Type of optimizer used to train the network.',
        valid_options=['AdamW', 'SGD'])
    monitor_name: Literal['val_loss', 'train_loss'] = tao_field(
        'val_loss', value_type='categorical', title='monitor_name',
        description='The metric value to be monitored for the :code:`AutoReduce` Scheduler.',
        valid_options=['val_loss', 'train_loss'])
    lr: float = tao_field(
        0.0002, value_type='float', title='learning rate',
        description='The initial learning rate for training the model, excluding the backbone.',
        valid_min=0.0, valid_max=INF, automl_enabled=True, x_log_scale=True, x_search_min=1e-05,
        x_search_max=0.001)
    lr_backbone: float = tao_field(
        2e-05, value_type='float', title='learning rate - backbone',
        description='The initial learning rate for training the backbone.', valid_min=0.0, valid_max=INF,
        automl_enabled=True, popular=True, x_log_scale=True, x_search_min=1e-06, x_search_max=0.0001)
    lr_linear_proj_mult: float = tao_field(
        0.1, value_type='float', title='learning rate - linear projection',
        description='The initial learning rate for training the linear projection layer.', valid_min=0.0,
        valid_max=INF, automl_enabled=True, popular=True, x_log_scale=True, x_search_min=0.01,
        x_search_max=1.0)
    momentum: float = tao_field(
        0.9, value_type='float', title='momentum - AdamW',
        description='The momentum for the AdamW optimizer.', valid_min=0.0, valid_max=INF,
        automl_enabled=True, popular=True, x_log_scale=False, x_search_min=0.5, x_search_max=0.99)
    weight_decay: float = tao_field(
        0.0001, value_type='float', title='weight decay', description='The weight decay coefficient.',
        valid_min=0.0, valid_max=INF, automl_enabled=True, popular=True, x_log_scale=True,
        x_search_min=1e-06, x_search_max=0.01)
    lr_scheduler: Literal['MultiStep', 'StepLR'] = tao_field(
        'MultiStep', value_type='categorical', title='learning rate scheduler',
        description='The learning scheduler:\n                    * MultiStep : Decrease the lr by lr_decay from lr_steps\n                    * StepLR : Decrease the lr by lr_decay at every lr_step_size.',
        valid_options=['MultiStep', 'StepLR'])
    lr_steps: list[int] = tao_field(
        default_factory=lambda: [10], value_type='list', title='learning rate decay steps',
        description='The steps at which the learning rate must be decreased.\n                    This is applicable only with the MultiStep LR.',
        automl_enabled=False)
    lr_step_size: int = tao_field(
        10, value_type='int', title='learning rate step size',
        description='The number of steps to decrease the learning rate in the StepLR.', valid_min=0,
        valid_max=INF, automl_enabled=True, x_search_min=1, x_search_max=30)
    lr_decay: float = tao_field(
        0.1, value_type='float', title='learning rate decay',
        description='The decreasing factor for the learning rate scheduler.', valid_min=0.0, valid_max=INF,
        automl_enabled=True, x_log_scale=True, x_search_min=0.01, x_search_max=0.5)


class CudnnConfig(TaoSection):
    """CudnnConfig"""

    benchmark: bool = tao_field(False, value_type='bool')
    deterministic: bool = tao_field(True, value_type='bool')


class TrainConfig(TaoSection):
    """Configurable parameters to construct the trainer for a Grounding DINO experiment."""

    num_gpus: int = tao_field(
        1, value_type='int', title='Number of GPUs', description='The number of GPUs to run the train job.',
        valid_min=1, popular=True)
    gpu_ids: list[int] = tao_field(
        default_factory=lambda: [0], value_type='list', title='GPU IDs',
        description='\n        List of GPU IDs to run the training on. The length of this list\n        must be equal to the number of gpus in train.num_gpus.',
        automl_enabled=False, popular=True)
    num_nodes: int = tao_field(
        1, value_type='int', title='Number of nodes',
        description='Number of nodes to run the training on. If > 1, then multi-node is enabled.',
        valid_min=1, popular=True)
    seed: int = tao_field(
        1234, value_type='int', title='Seed for randomization',
        description='The seed for the initializer in PyTorch. If < 0, disable fixed seed.', valid_min=-1,
        valid_max=INF)
    cudnn: CudnnConfig = section(CudnnConfig)
    num_epochs: int = tao_field(
        10, value_type='int', title='Number of epochs', description='Number of epochs to run the training.',
        valid_min=1, valid_max=INF, popular=True)
    checkpoint_interval: int = tao_field(
        1, value_type='int', title='Checkpoint interval',
        description='The interval (in epochs) at which a checkpoint will be saved. Helps resume training.',
        valid_min=1, popular=True)
    checkpoint_interval_unit: Literal['epoch', 'step'] = tao_field(
        'epoch', value_type='categorical', title='Checkpoint interval unit',
        description='The unit of the checkpoint interval.', valid_options=['epoch', 'step'])
    validation_interval: int = tao_field(
        1, value_type='int', title='Validation interval',
        description='\n        The interval (in epochs) at which a evaluation\n        will be triggered on the validation dataset.',
        valid_min=1, popular=True)
    resume_training_checkpoint_path: str = tao_field(
        '', value_type='string', title='Resume checkpoint path',
        description='Path to the checkpoint to resume training from.')
    results_dir: str = tao_field(
        '', value_type='string', title='Results directory',
        description='\n        Path to where all the assets generated from a task are stored.\n        ')
    freeze: list[str] = tao_field(
        default_factory=lambda: [], value_type='list', title='freeze',
        description='\n        List of layer names to freeze.\n        Example: ["backbone", "transformer.encoder", "input_proj"].',
        automl_enabled=False)
    pretrained_model_path: str = tao_field(
        '', value_type='string',
        description='Path to a pre-trained Deformable DETR model to initialize the current training from.')
    clip_grad_norm: float = tao_field(
        0.1, value_type='float', title='clip gradient norm',
        description='\n        Amount to clip the gradient by L2 Norm.\n        A value of 0.0 specifies no clipping.',
        math_cond='> 0.0')
    is_dry_run: bool = tao_field(
        False, value_type='bool', title='Is dry run',
        description='\n        Whether to run the trainer in Dry Run mode. This serves\n        as a good means to validate the spec file and run a sanity check on the trainer\n        without actually initializing and running the trainer.')
    optim: OptimConfig = section(
        OptimConfig, title='optimizer', description='Hyper parameters to configure the optimizer.')
    precision: Literal['fp16', 'fp32', 'bf16'] = tao_field(
        'fp32', value_type='categorical', title='precision', description='Precision to run the training on.',
        valid_options=['fp16', 'fp32', 'bf16'])
    distributed_strategy: Literal['ddp', 'fsdp'] = tao_field(
        'ddp', value_type='categorical', title='distributed_strategy',
        description='\n        The multi-GPU training strategy.\n        DDP (Distributed Data Parallel) and Fully Sharded DDP are supported.',
        valid_options=['ddp', 'fsdp'])
    activation_checkpoint: bool = tao_field(
        True, value_type='bool', title='enable activation checkpointing',
        description='\n        A True value instructs train to recompute in backward pass to save GPU memory,\n        rather than storing activations.')


class AugmentationConfig(TaoSection):
    """Configuration parameters for data augmentation"""

    scales: list[int] = tao_field(
        default_factory=lambda: [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800], value_type='list',
        title='scales', description='A list of sizes to perform random resize.', automl_enabled=False)
    input_mean: list[float] = tao_field(
        default_factory=lambda: [0.485, 0.456, 0.406], value_type='list', title='input mean per pixel',
        description='The input mean for RGB frames', automl_enabled=False)
    input_std: list[float] = tao_field(
        default_factory=lambda: [0.229, 0.224, 0.225], value_type='list', title='input std per pixel',
        description='The input standard deviation per pixel for RGB frames', automl_enabled=False)
    train_random_resize: list[int] = tao_field(
        default_factory=lambda: [400, 500, 600], value_type='list', title='train random resize dimensions',
        description='A list of sizes to perform random resize for training data', automl_enabled=False)
    horizontal_flip_prob: float = tao_field(
        0.5, value_type='float', title='horizontal flip probability',
        description='The probability for horizonal flip during training', valid_min=0.0, valid_max=1.0,
        automl_enabled=True, x_search_min=0.0, x_search_max=1.0)
    train_random_crop_min: int = tao_field(
        384, value_type='int', title='minumum random crop size',
        description='The minimum random crop size for training data', valid_min=32, valid_max=INF,
        parent_param=True, automl_enabled=True, x_search_min=256, x_search_max=600)
    train_random_crop_max: int = tao_field(
        600, value_type='int', title='Maximum random crop size',
        description='The maximum random crop size for training data. Must be > train_random_crop_min',
        valid_min=32, valid_max=1333, math_cond='> depends_on',
        depends_on='dataset.augmentation.train_random_crop_min', automl_enabled=True, x_search_min=384,
        x_search_max=1333)
    random_resize_max_size: int = tao_field(
        1333, value_type='int', title='random resize max size',
        description='The maximum random resize size for training data', valid_min=1, valid_max=INF)
    test_random_resize: int = tao_field(
        800, value_type='int', title='random resize max size',
        description='The random resize size for test data', valid_min=32, valid_max=INF,
        automl_enabled=False)
    fixed_padding: bool = tao_field(
        True, value_type='bool', title='fixed padding',
        description='A flag specifying whether to resize the image (with no padding) to (sorted(scales[-1]), random_resize_max_size) to prevent a CPU memory leak.')
    fixed_random_crop: Optional[int] = tao_field(
        None, value_type='int', schema_default=1024, title='fixed random crop',
        description='A flag to enable Large Scale Jittering, which is used for ViT backbones. The resulting image resolution is fixed to fixed_random_crop.',
        valid_min=1, valid_max=INF)


class TrainDataSource(StrictModel):
    """One ODVG training source: images, the JSONL annotations and (detection data only) a label map."""

    image_dir: str = tao_field('', value_type='string', title='image directory',
                               description='Directory (or images.tar.gz archive, or URI) holding the training images.')
    json_file: str = tao_field('', value_type='string', title='annotation file',
                               description='ODVG JSONL annotation file.')
    label_map: Optional[str] = tao_field(None, value_type='string', title='label map',
                                         description='Label map JSON (only for detection data sources).')


class EvalDataSource(StrictModel):
    """A COCO source for validation, test or quantization calibration."""

    image_dir: str = tao_field('', value_type='string', title='image directory',
                               description='Directory (or images.tar.gz archive, or URI) holding the images.')
    json_file: str = tao_field('', value_type='string', title='annotation file',
                               description='COCO annotation JSON (category ids contiguous from 0).')


class InferDataSource(StrictModel):
    """Images to run inference on, and the captions (phrases) to detect."""

    image_dir: list[str] = tao_field(default_factory=lambda: [''], value_type='list', title='image directories',
                                     description='Directories holding the inference images.')
    captions: list[str] = tao_field(default_factory=lambda: [''], value_type='list', title='captions',
                                    description='Phrases to detect.')

    @field_validator('image_dir', 'captions', mode='before')
    @classmethod
    def _single_value_as_list(cls, value: Any) -> Any:
        """TAO users sometimes give one directory or caption as a plain string."""
        return [value] if isinstance(value, str) else value


class DatasetConfig(TaoSection):
    """Configurable parameters to construct the dataset for a Grounding DINO experiment."""

    train_data_sources: list[TrainDataSource] = tao_field(
        default_factory=list, value_type='list',
        schema_default=[{'image_dir': '', 'json_file': '', 'label_map': ''}, {'image_dir': '', 'json_file': ''}],
        title='train data sources',
        description='The list of data sources for training:\n* image_dir : The directory that contains the training images\n* json_file : The path of the JSONL file, which uses training-annotation ODVG format\n* label_map: (Optional) The path of the label mapping only required for detection dataset',
        automl_enabled=False)
    val_data_sources: EvalDataSource = tao_field(
        default_factory=EvalDataSource, value_type='collection', title='validation data sources',
        description='The data source for validation:\n* image_dir : The directory that contains the validation images\n* json_file : The path of the JSON file, which uses validation-annotation COCO format.\nNote that category id needs to start from 0 if we want to calculate validation loss.\nRun Data Services annotation convert to making the categories contiguous.',
        automl_enabled=False)
    test_data_sources: EvalDataSource = tao_field(
        default_factory=EvalDataSource, value_type='collection', title='test data sources',
        description='The data source for testing:\n* image_dir : The directory that contains the test images\n* json_file : The path of the JSON file, which uses test-annotation COCO format',
        automl_enabled=False)
    infer_data_sources: InferDataSource = tao_field(
        default_factory=InferDataSource, value_type='collection', title='infer data sources',
        description='The data source for inference:\n* image_dir : The list of directories that contains the inference images\n* captions : The list of caption to run inference',
        automl_enabled=False)
    quant_calibration_data_sources: EvalDataSource = tao_field(
        default_factory=EvalDataSource, value_type='collection',
        title='quantization calibration data sources',
        description='The data source for quantization calibration:\n* image_dir : The directory that contains the quantization calibration images\n* json_file(optional) : The path of the JSON file, which uses quantization calibration-annotation COCO format',
        automl_enabled=False)
    batch_size: int = tao_field(
        4, value_type='int', title='batch size', description='The batch size for training and validation',
        valid_min=1, valid_max=INF)
    workers: int = tao_field(
        8, value_type='int', title='batch size',
        description='The number of parallel workers processing data', valid_min=1, valid_max=INF)
    pin_memory: bool = tao_field(
        True, value_type='bool', title='pin_memory',
        description='Flag to enable the dataloader to allocated pagelocked memory for faster of data between the CPU and GPU.')
    dataset_type: Literal['serialized', 'default'] = tao_field(
        'serialized', value_type='categorical', title='dataset type',
        description='If set to default, we follow the standard map-style dataset structure from torch which loads ODVG annotation in every subprocess. This leads to redudant copy of data and can cause RAM to explod if `workers` is high. If set to serialized, the data is serialized through pickle and `torch.Tensor` that allows the data to be shared across subprocess. As a result, RAM usage can be greatly improved.',
        valid_options=['serialized', 'default'])
    max_labels: int = tao_field(
        50, value_type='int', title='max labels',
        description='The total number of labels to sample from. After sampling positive labels, we randomly sample negative samples so that total number of labels equal to `max_labels`. For detection dataset, negative labels are categories not present in the image. For grounding dataset, negative labels are phrases in the original caption not present in the image. Setting higher `max_labels` may improve robustness of the model with the cost of longer training time.',
        valid_min=1, valid_max=INF, math_cond='>0')
    eval_class_ids: Optional[list[int]] = tao_field(
        None, value_type='list', schema_default=[1], title='eval class ids',
        description='IDs of the classes for evaluation.', automl_enabled=False)
    augmentation: AugmentationConfig = section(
        AugmentationConfig, title='augmentation',
        description='Configuration parameters for data augmentation')


class ModelConfig(TaoSection):
    """Configurable parameters to construct the model for a Grounding DINO experiment."""

    pretrained_backbone_path: str = tao_field(
        '', value_type='string', title='pretrained backbone path',
        description='[Optional] Path to a pretrained backbone file.')
    backbone: Literal['swin_tiny_224_1k', 'swin_base_224_22k', 'swin_base_384_22k', 'swin_large_224_22k', 'swin_large_384_22k', 'resnet_50', 'resnet_18'] = tao_field(
        'swin_tiny_224_1k', value_type='categorical', title='backbone',
        description='The backbone name of the model.\n                    TAO implementation of DINO support Swin and ResNet50.',
        valid_options=['swin_tiny_224_1k', 'swin_base_224_22k', 'swin_base_384_22k', 'swin_large_224_22k', 'swin_large_384_22k', 'resnet_50', 'resnet_18'],
        popular=True, x_note='resnet_18 is ours (not TAO): a small backbone for the CPU preset')
    num_queries: int = tao_field(
        900, value_type='int', title='number of queries', description='The number of queries', valid_min=1,
        valid_max=INF, parent_param=True, popular=True)
    num_feature_levels: int = tao_field(
        4, value_type='int', title='number of feature levels',
        description='The number of feature levels to use in the model', valid_min=1, valid_max=5)
    set_cost_class: float = tao_field(
        1.0, value_type='float', title='Set cost classification',
        description='The relative weight of the classification error in the matching cost.', valid_min=0.0,
        valid_max=INF, popular=True)
    set_cost_bbox: float = tao_field(
        5.0, value_type='float', title='Set cost BBox ',
        description='The relative weight of the L1 error of the bounding box coordinates in the matching cost.',
        valid_min=0.0, valid_max=INF, popular=True)
    set_cost_giou: float = tao_field(
        2.0, value_type='float', title='Set cost GIoU',
        description='The relative weight of the GIoU loss of the bounding box in the matching cost.',
        valid_min=0.0, valid_max=INF, popular=True)
    cls_loss_coef: float = tao_field(
        2.0, value_type='float', title='Class loss coefficient',
        description='The relative weight of the classification error in the final loss.', valid_min=0.0,
        valid_max=INF, popular=True)
    bbox_loss_coef: float = tao_field(
        5.0, value_type='float', title='BBox loss coefficient',
        description='The relative weight of the L1 error of the bounding box coordinates in the final loss.',
        valid_min=0.0, valid_max=INF, popular=True)
    giou_loss_coef: float = tao_field(
        2.0, value_type='float', title='GIoU loss coefficient',
        description='The relative weight of the GIoU loss of the bounding box in the final loss.',
        valid_min=0.0, valid_max=INF, popular=True)
    num_select: int = tao_field(
        300, value_type='int', title='num select',
        description='The number of top-K predictions selected during post-process. Must be < num_queries * num_classes',
        valid_min=1, valid_max=1000, depends_on='model.num_queries', automl_enabled=True, popular=True,
        x_search_min=10, x_search_max=900)
    interm_loss_coef: float = tao_field(1.0, value_type='float', title='intermediate loss coefficient')
    no_interm_box_loss: bool = tao_field(
        False, value_type='bool', title='no interm bbox loss', description='No intermediate bbox loss.')
    pre_norm: bool = tao_field(
        False, value_type='bool', title='Pre norm',
        description='Flag to add layer norm in the encoder or not.')
    two_stage_type: Literal['standard', 'no'] = tao_field(
        'standard', value_type='categorical', title='two stage type',
        description='Type of two stage in DINO', valid_options=['standard', 'no'])
    decoder_sa_type: Literal['sa', 'ca_label', 'ca_content'] = tao_field(
        'sa', value_type='categorical', title='decoder self-attention type',
        description='Type of decoder self attention.', valid_options=['sa', 'ca_label', 'ca_content'])
    embed_init_tgt: bool = tao_field(
        True, value_type='bool', title='embed init target', description='Flag to add target embedding')
    fix_refpoints_hw: int = tao_field(
        -1, value_type='int', title='fix refpoints hw',
        description='If this value is -1, width and height are learned seperately for each box.\n                    If this value is -2, a shared width and height are learned.\n                    A value greater than 0 specifies learning with a fixed number.',
        valid_min=-2, valid_max=INF, math_cond='!= 0')
    pe_temperatureH: int = tao_field(
        20, value_type='int', title='pe_temperatureH',
        description='The temperature applied to the height dimension of the positional sine embedding.',
        valid_min=1, valid_max=INF)
    pe_temperatureW: int = tao_field(
        20, value_type='int', title='pe_temperatureW',
        description='The temperature applied to the width dimension of the positional sine embedding.',
        valid_min=1, valid_max=INF)
    return_interm_indices: list[int] = tao_field(
        default_factory=lambda: [1, 2, 3, 4], value_type='list', title='return interim indices',
        description='The index of feature levels to use in the model. The length must match `num_feature_levels`.',
        automl_enabled=False)
    use_dn: bool = tao_field(
        True, value_type='bool', title='use denoising',
        description='A flag specifying whether to enbable contrastive de-noising training in DINO')
    dn_number: int = tao_field(
        0, value_type='int', title='denoising number',
        description='The number of denoising queries in DINO.', valid_min=0, valid_max=INF)
    dn_box_noise_scale: float = tao_field(
        1.0, value_type='float', title='Denoised boxes noise scaling',
        description='The scale of noise applied to boxes during contrastive de-noising. If this value is 0, noise is not applied.',
        valid_min=0.0, valid_max=INF)
    dn_label_noise_ratio: float = tao_field(
        0.5, value_type='float', title='denoise label noise ratio',
        description='The scale of the noise applied to labels during\n                       contrastive denoising. If this value is 0, then noise is\n                       no applied.',
        valid_min=0.0)
    focal_alpha: float = tao_field(
        0.25, value_type='float', title='focal alpha', description='The alpha value in the focal loss.',
        math_cond='> 0.0')
    focal_gamma: float = tao_field(
        2.0, value_type='float', title='focal gamma', description='The gamma value in the focal loss.',
        math_cond='> 0.0')
    clip_max_norm: float = tao_field(0.1, value_type='float', title='clip max norm')
    nheads: int = tao_field(8, value_type='int', title='nheads', description='Number of heads')
    dropout_ratio: float = tao_field(
        0.0, value_type='float', title='drop out ratio', description='The probability to drop hidden units.',
        valid_min=0.0, valid_max=1.0)
    hidden_dim: int = tao_field(
        256, value_type='int', description='Dimension of the hidden units.', automl_enabled=False)
    enc_layers: int = tao_field(
        6, value_type='int', title='encoder layers',
        description='Numer of encoder layers in the transformer', valid_min=1, automl_enabled=True,
        x_search_min=1, x_search_max=6)
    dec_layers: int = tao_field(
        6, value_type='int', title='decoder layers',
        description='Numer of decoder layers in the transformer', valid_min=1, automl_enabled=True,
        x_search_min=2, x_search_max=6)  # HF's Grounding DINO needs >= 2 decoder layers (gdino.model.fields)
    dim_feedforward: int = tao_field(
        2048, value_type='int', title='dim feedforward', description='Dimension of the feedforward network',
        valid_min=1)
    dec_n_points: int = tao_field(
        4, value_type='int', title='decoder n points',
        description='Number of reference points in the decoder.', valid_min=1)
    enc_n_points: int = tao_field(
        4, value_type='int', title='encoder n points',
        description='Number of reference points in the encoder.', valid_min=1)
    aux_loss: bool = tao_field(
        True, value_type='bool', title='Train backbone',
        description='A flag specifying whether to use auxiliary\n                    decoding losses (loss at each decoder layer)')
    dilation: bool = tao_field(
        False, value_type='bool', title='Dilation enabled.',
        description='A flag specifying whether enable dilation or not in the backbone.')
    train_backbone: bool = tao_field(
        True, value_type='bool', title='Train backbone',
        description='Flag to set backbone weights as trainable or frozen.\n                    When set to `False`, the backbone weights will be frozen.')
    text_encoder_type: str = tao_field(
        'bert-base-uncased', value_type='string', title='Text encoder type',
        description='BERT encoder type. If only the name of the type is provided,\n                    the weight is download from the HuggingFace Hub.\n                    If a path is provided, then we load the weight from the local path.')
    max_text_len: int = tao_field(
        256, value_type='int', title='Maximum text length', description='Maximum text length of BERT.',
        valid_min=1)
    allow_partial_load: bool = tao_field(
        False, value_type='bool', title='allow partial load',
        description='Ours (not TAO). Checkpoints (train.pretrained_model_path, evaluate/inference/export '
                    'checkpoint, model.pretrained_backbone_path) must fill every tensor of the configured network '
                    'and carry nothing that fits nowhere; true loads what fits, prints the load table and a '
                    'warning (for deliberate head or size changes).',
        automl_enabled=False, x_note='ours (not TAO)')
    class_embed_bias: bool = tao_field(
        False, value_type='bool', title='Class embedding bias',
        description='Flag to set bias in the contrastive embedding.')
    log_scale: Optional[str] = tao_field(
        'none', value_type='string', title='log scale',
        description="[Optional] The initial value of a learnable parameter to multiply with the similarity\n                    matrix to normalize the output. Defaults to None.\n                    - If set to 'auto', the similarity matrix will be normalized by\n                    a fixed value ``sqrt(d_c)`` where ``d_c`` is the channel number.\n                    - If set to 'none' or ``None``, there is no normalization applied.")
    loss_types: list[str] = tao_field(
        default_factory=lambda: ['labels', 'boxes'], value_type='list', title='loss_types',
        description='Losses to be used during training', automl_enabled=False)
    backbone_names: list[str] = tao_field(
        default_factory=lambda: ['backbone.0', 'bert'], value_type='list',
        title='Backbone tensor name prefix',
        description='Prefix of the tensor names corresponding to the backbone.', automl_enabled=False)
    linear_proj_names: list[str] = tao_field(
        default_factory=lambda: ['reference_points', 'sampling_offsets'], value_type='list',
        title='linear projection names', description='Linear projection layer names.', automl_enabled=False)


class WandbConfig(TaoSection):
    """WandbConfig"""

    enable: bool = tao_field(True, value_type='bool')
    project: str = tao_field('TAO Toolkit', value_type='string')
    entity: str = tao_field('', value_type='string')
    group: str = tao_field('', value_type='string')
    tags: list[str] = tao_field(
        default_factory=lambda: ['tao-toolkit'], value_type='list', automl_enabled=False)
    reinit: bool = tao_field(False, value_type='bool')
    sync_tensorboard: bool = tao_field(False, value_type='bool')
    save_code: bool = tao_field(False, value_type='bool')
    name: str = tao_field('TAO Toolkit Training', value_type='string')
    run_id: str = tao_field('', value_type='string')


class ExperimentConfig(TaoSection):
    """The complete grounding_dino experiment spec: TAO's sections plus our automl_policy, automl, mlflow."""

    model_name: str = tao_field(
        '', value_type='string', title='Model name',
        description='Name of model if invoking task via :code:`model_agnostic`')
    encryption_key: str = tao_field(
        '', value_type='string', title='Encryption key', description='Key for encrypting model checkpoints',
        repr=False)
    results_dir: str = tao_field(
        '', value_type='string', title='Results directory',
        description='\n        Path to where all the assets generated from a task are stored.\n        ')
    wandb: WandbConfig = section(WandbConfig, x_note='accepted for TAO compatibility and ignored')
    model: ModelConfig = section(
        ModelConfig,
        description='Configurable parameters to construct the model for a Grounding DINO experiment.')
    dataset: DatasetConfig = section(
        DatasetConfig,
        description='Configurable parameters to construct the dataset for a Grounding DINO experiment.')
    train: TrainConfig = section(
        TrainConfig,
        description='Configurable parameters to construct the trainer for a Grounding DINO experiment.')
    quantize: QuantizeConfig = section(
        QuantizeConfig,
        description='Configurable parameters to run model quantization for a Grounding DINO experiment.')
    evaluate: EvaluateConfig = section(
        EvaluateConfig,
        description='Configurable parameters to construct the evaluator for a Grounding DINO experiment.')
    inference: InferenceConfig = section(
        InferenceConfig,
        description='Configurable parameters to construct the inferencer for a Grounding DINO experiment.')
    export: ExportConfig = section(
        ExportConfig,
        description='Configurable parameters to construct the exporter for a Grounding DINO experiment.')
    gen_trt_engine: GenTrtEngineConfig = section(
        GenTrtEngineConfig,
        description='Configurable parameters to construct the TensorRT engine builder for a Grounding DINO experiment.')
    automl_policy: Literal['auto', 'off'] = tao_field(
        'auto', value_type='categorical', title='AutoML policy', valid_options=['auto', 'off'],
        description="Ours. 'auto': `train` runs an AutoML sweep; 'off': plain training (one run).")

    @field_validator('automl_policy', mode='before')
    @classmethod
    def _yaml_bool_policy(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` (e.g. the override `automl_policy=off`) as False
        return {False: 'off', True: 'auto'}.get(value, value) if isinstance(value, bool) else value

    automl: AutoMLConfig = section(AutoMLConfig, title='AutoML', description='Ours. Search space, algorithm, budgets.',
                                   x_ours=True)
    mlflow: MLflowConfig = section(
        MLflowConfig, title='MLflow', description='Ours. Experiment tracking.', x_ours=True)
