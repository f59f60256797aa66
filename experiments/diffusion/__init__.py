"""U-Net diffusion memorisation study ("burning bottleneck", issue 5).

Trains small DDPMs on class-balanced Fashion-MNIST subsets of several sizes N, measures which generated samples copy
training images (the Carlini/Gu nearest-neighbour criterion), and asks where in the U-Net layer-wise drift separates
training images from held-out ones, against a held-out-vs-held-out null, and how early compared with the loss gap.
"""

from experiments.diffusion.config import DiffusionData, DiffusionStudyConfig, EvalSpec, TrainSpec, UNetSpec
from experiments.diffusion.memorisation import memorisation_table, nearest_neighbours
from experiments.diffusion.model import EMA, build_scheduler, build_unet
from experiments.diffusion.sampling import ddim_sample
from experiments.diffusion.train import load_checkpoint_weights, train_diffusion

__all__ = [
    "EMA",
    "DiffusionData",
    "DiffusionStudyConfig",
    "EvalSpec",
    "TrainSpec",
    "UNetSpec",
    "build_scheduler",
    "build_unet",
    "ddim_sample",
    "load_checkpoint_weights",
    "memorisation_table",
    "nearest_neighbours",
    "train_diffusion",
]
