"""The book's own implementations of the networks it teaches: every ``nn.Module`` network
class of the library lives in this package.

Export policy: one import path per name. The package itself exports nothing; each module
holds one family and lists its public names (network classes, their builders and blocks)
in ``__all__``; import a name from the module that defines it, e.g.
``from cnnbook.models.lenet import LeNet`` or ``from cnnbook.models.unet import UNet``.
Non-network code (losses, metrics, data, training helpers) stays in the topic modules
(``cnnbook.segmentation``, ``cnnbook.detector``, ``cnnbook.losses``, ...).

Modules: lenet (ch 7); alexnet, vgg, inception, resnet, densenet, mobilenet, se, convnext
(ch 9, convnext also ch 18); cifar_resnet (ch 10); weights (loading weights by position);
grid_detector (ch 15); unet and segmentation_heads (ch 16); embedding (ch 17); vit (ch 18).
"""
