"""U-Net diffusion memorisation study: is there a "burning bottleneck"?

Trains small DDPMs on class-balanced Fashion-MNIST subsets of several sizes N, measures which generated samples copy
training images (the Carlini/Gu nearest-neighbour criterion), and asks where in the U-Net layer-wise drift separates
training images from held-out ones, against a held-out-vs-held-out null, and how early compared with the loss gap.
The workflow's entries, one per rule, are in :mod:`experiments.diffusion.run`; what a notebook needs is here.
"""

from experiments.diffusion.config import DiffusionData, DiffusionStudyConfig, EvalSpec, TrainSpec, UNetSpec
from experiments.diffusion.data import SplitImages, split_images, study_split
from experiments.diffusion.drift import block_geometry, drift_vs_null
from experiments.diffusion.memorisation import memorisation_row, memorisation_table, nearest_neighbours
from experiments.diffusion.model import EMA, build_scheduler, build_unet
from experiments.diffusion.onset import drift_gaps, onset_table
from experiments.diffusion.run import train_run
from experiments.diffusion.sampling import ddim_sample
from experiments.diffusion.train import load_checkpoint_weights, train_diffusion

__all__ = [
    "EMA",
    "DiffusionData",
    "DiffusionStudyConfig",
    "EvalSpec",
    "SplitImages",
    "TrainSpec",
    "UNetSpec",
    "block_geometry",
    "build_scheduler",
    "build_unet",
    "ddim_sample",
    "drift_gaps",
    "drift_vs_null",
    "load_checkpoint_weights",
    "memorisation_row",
    "memorisation_table",
    "nearest_neighbours",
    "onset_table",
    "split_images",
    "study_split",
    "train_diffusion",
    "train_run",
]
