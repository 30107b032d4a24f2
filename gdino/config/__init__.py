"""The experiment config: TAO's grounding_dino sections (gdino.config.tao) plus ours (gdino.config.automl).

`ExperimentConfig().model_dump(mode="json")` is the nested TAO dict. Each field's TAO metadata is in
its `json_schema_extra` (see gdino.config.fields). Load specs with `gdino.spec.load_spec`.
"""
from gdino.config.automl import AutoMLConfig, MLflowConfig, RangeOverride
from gdino.config.fields import field_meta, tao_field
from gdino.config.tao import (
                              AugmentationConfig,
                              CudnnConfig,
                              DatasetConfig,
                              EvalDataSource,
                              EvaluateConfig,
                              ExperimentConfig,
                              ExportConfig,
                              GenTrtEngineConfig,
                              InferDataSource,
                              InferenceConfig,
                              ModelConfig,
                              OptimConfig,
                              QuantizeConfig,
                              TensorRTConfig,
                              TrainConfig,
                              TrainDataSource,
                              WandbConfig,
)

# TAO's action sections (the others are shared by every action)
ACTION_SECTIONS = ("train", "evaluate", "inference", "export", "gen_trt_engine", "quantize")

__all__ = [
    "ACTION_SECTIONS", "AugmentationConfig", "AutoMLConfig", "CudnnConfig", "DatasetConfig", "EvalDataSource",
    "EvaluateConfig", "ExperimentConfig", "ExportConfig", "GenTrtEngineConfig", "InferDataSource",
    "InferenceConfig", "MLflowConfig", "ModelConfig", "OptimConfig", "QuantizeConfig", "RangeOverride",
    "TensorRTConfig", "TrainConfig", "TrainDataSource", "WandbConfig", "field_meta", "tao_field",
]
