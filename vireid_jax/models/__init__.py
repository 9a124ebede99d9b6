"""Networks: torchvision-exact ResNets, shared layers, the AGW model and its outputs."""

from vireid_jax.models.agw import (
    AGW,
    build_agw,
    non_local_positions,
)
from vireid_jax.models.layers import (
    BatchNorm,
    GeneralizedMeanPooling,
    NonLocalBlock,
    average_pool,
    gem_pool,
    kaiming_normal_fan_out,
    l2_normalize,
    normal_init,
    torch_default_uniform,
)
from vireid_jax.models.outputs import ReidOutputs
from vireid_jax.models.resnet import (
    RESNET_CONFIGS,
    BasicBlock,
    Bottleneck,
    Projection,
    ResNet,
    ResNetStages,
    Stem,
    max_pool_3x3_s2,
    resnet_config,
    stage_channels,
)

__all__ = [
    'AGW',
    'BasicBlock',
    'BatchNorm',
    'Bottleneck',
    'GeneralizedMeanPooling',
    'NonLocalBlock',
    'Projection',
    'RESNET_CONFIGS',
    'ReidOutputs',
    'ResNet',
    'ResNetStages',
    'Stem',
    'build_agw',
    'average_pool',
    'gem_pool',
    'kaiming_normal_fan_out',
    'l2_normalize',
    'max_pool_3x3_s2',
    'non_local_positions',
    'normal_init',
    'resnet_config',
    'stage_channels',
    'torch_default_uniform',
]
