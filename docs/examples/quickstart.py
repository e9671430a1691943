import pytorch_lightning as pl
import torch
from torch import nn

from lightning_cam import CAMCallback, CAMMixin
from lightning_cam.data import ShapesDataModule


class Net(CAMMixin, pl.LightningModule):
    cam_target_layer = "features"  # the layer to explain (default None: chosen by a rule)

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch["image"]), batch["label"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val_loss", nn.functional.cross_entropy(self(batch["image"]), batch["label"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


data = ShapesDataModule(num_train=256, num_val=64, image_size=32, batch_size=32)  # built-in synthetic images
cam = CAMCallback(methods=("gradcam", "eigencam"), max_samples=64, num_images=4)
trainer = pl.Trainer(max_epochs=2, callbacks=[cam], default_root_dir="lightning_logs", enable_progress_bar=False)
trainer.fit(Net(), data)  # TensorBoard: lightning_logs/lightning_logs/version_0
print({k: round(float(v), 3) for k, v in trainer.callback_metrics.items() if k.count("/") == 2})  # cam/<m>/<metric>
