"""Where the library runs: the device, the writable home and shipped assets, and the torchvision compatibility step."""
