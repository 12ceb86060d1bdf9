"""A ResNet VAE as a vaekit plugin: residual convolutional networks, the rest of vaekit unchanged."""

from torch import nn

from vaekit.models import NetworkVAE, register_model


class Residual(nn.Module):
    """x + f(x): two 3x3 convolutions that keep the channels and the size."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.SiLU(), nn.Conv2d(width, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1)
        )

    def forward(self, x):
        return x + self.f(x)


@register_model
class ResNetVAE(NetworkVAE):
    """A stride-2 convolution and ``blocks`` residual blocks of ``width`` channels to the posterior; the
    decoder mirrors them and upsamples to the image's own size, so any size and channel count will do.
    ``**options`` (the likelihood, a prior, a posterior) go on to vaekit unchanged."""

    name = "resnet"

    def __init__(self, image_shape=(1, 28, 28), latent_dim=16, width=32, blocks=2, **options):
        super().__init__(
            image_shape=list(image_shape), latent_dim=latent_dim, width=width, blocks=blocks, **options
        )
        channels, height, across = image_shape
        grid = (width, (height + 1) // 2, (across + 1) // 2)  # the features' shape after the stride
        features = grid[0] * grid[1] * grid[2]
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1),
            *(Residual(width) for _ in range(blocks)),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(features, 2 * latent_dim),  # the posterior's mean and log-variance
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, features),
            nn.Unflatten(1, grid),
            *(Residual(width) for _ in range(blocks)),
            nn.SiLU(),
            nn.Upsample(size=(height, across)),
            nn.Conv2d(width, channels, 3, padding=1),  # pixel logits
        )
