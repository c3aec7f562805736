"""Image classifier fine-tuning and serving under the SageMaker container contracts.

Shared by both images: `preprocessing` (image decoding and the evaluation transform), `model`
(backbones and the classification head) and `artifact` (the model directory format).
`training` runs inside the training image, `serving` inside the serving image.
"""
