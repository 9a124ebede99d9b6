"""Networks: torchvision-exact ResNets, shared layers, the AGW, MCJA, MMN and DJANet models, their
outputs, and the Mamba block."""

from vireid_jax.models.agw import (
    AGW,
    build_agw,
)
from vireid_jax.models.djanet import DJANet, build_djanet
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
from vireid_jax.models.mamba import Mamba
from vireid_jax.models.mcja import MCJA, build_mcja
from vireid_jax.models.mda import MDA
from vireid_jax.models.mmn import MMN, build_mmn
from vireid_jax.models.outputs import ReidOutputs
from vireid_jax.models.resnet import (
    RESNET_CONFIGS,
    BasicBlock,
    Bottleneck,
    Projection,
    ResNet,
    ResNetStages,
    Stem,
    after_last_blocks,
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
    'MCJA',
    'Mamba',
    'MDA',
    'MMN',
    'DJANet',
    'NonLocalBlock',
    'Projection',
    'RESNET_CONFIGS',
    'ReidOutputs',
    'ResNet',
    'ResNetStages',
    'Stem',
    'after_last_blocks',
    'build_agw',
    'build_mcja',
    'build_mmn',
    'build_djanet',
    'average_pool',
    'gem_pool',
    'kaiming_normal_fan_out',
    'l2_normalize',
    'max_pool_3x3_s2',
    'normal_init',
    'resnet_config',
    'stage_channels',
    'torch_default_uniform',
]
