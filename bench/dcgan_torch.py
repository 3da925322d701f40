"""The seed's DCGAN in PyTorch, exactly as ../shared/METHOD.md section 1 states.

Used as an independent reference: tests/fixtures/make_torch_fixture.py builds fixtures from it,
and bench/bench_train.py times it against unitmatch. Not used by the tool or CI.
"""
import torch
import torch.nn as nn

LATENT = 100
IMG = 32


def ch(base, width):
    return max(1, int(round(base * width)))


class Generator(nn.Module):
    def __init__(self, width=1.0, bn_eps=0.8):
        super().__init__()
        c1, c2 = ch(128, width), ch(64, width)
        self.c1 = c1
        self.init_size = IMG // 4
        self.l1 = nn.Sequential(nn.Linear(LATENT, c1 * self.init_size ** 2))
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(c1),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(c1, c1, 3, stride=1, padding=1),
            nn.BatchNorm2d(c1, bn_eps),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(c1, c2, 3, stride=1, padding=1),
            nn.BatchNorm2d(c2, bn_eps),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c2, 1, 3, stride=1, padding=1),
            nn.Tanh(),
        )

    def forward(self, z, with_activations=False):
        x = self.l1(z).view(z.shape[0], self.c1, self.init_size, self.init_size)
        acts = {}
        for i, layer in enumerate(self.conv_blocks):
            x = layer(x)
            if i == 4:
                acts["gen.block1"] = x.clone()
            elif i == 8:
                acts["gen.block2"] = x.clone()
        acts["gen.out"] = x
        return (x, acts) if with_activations else x


class Discriminator(nn.Module):
    def __init__(self, width=1.0, bn_eps=0.8):
        super().__init__()

        def block(i, o, bn=True):
            layers = [nn.Conv2d(i, o, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            if bn:
                layers.append(nn.BatchNorm2d(o, bn_eps))
            return layers

        c = [1, ch(16, width), ch(32, width), ch(64, width), ch(128, width)]
        self.model = nn.Sequential(
            *block(c[0], c[1], bn=False), *block(c[1], c[2]), *block(c[2], c[3]), *block(c[3], c[4])
        )
        self.adv_layer = nn.Sequential(nn.Linear(c[4] * 2 * 2, 1), nn.Sigmoid())

    def forward(self, img):
        out = self.model(img)
        return self.adv_layer(out.view(out.shape[0], -1))


def weights_init_normal(m):
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        torch.nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif name.find("BatchNorm2d") != -1:
        torch.nn.init.normal_(m.weight.data, 1.0, 0.02)
        torch.nn.init.constant_(m.bias.data, 0.0)
