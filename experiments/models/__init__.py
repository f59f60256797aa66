"""Shared model floor: a factory for from-scratch classifiers and a small CPU training loop."""

from experiments.models.factory import available_models, build_model
from experiments.models.small_nets import CifarResNet, small_cnn
from experiments.models.training import TrainConfig, TrainResult, evaluate_accuracy, train_classifier

__all__ = [
    "CifarResNet",
    "TrainConfig",
    "TrainResult",
    "available_models",
    "build_model",
    "evaluate_accuracy",
    "small_cnn",
    "train_classifier",
]
