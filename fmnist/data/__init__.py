"""Fashion-MNIST data: file formats, download sources, Great Expectations checks, splits."""
