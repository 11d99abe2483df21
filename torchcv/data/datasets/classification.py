"""Classification datasets: ImageFolder / ImageNet layout and a list-file format."""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

from torch.utils.data import Dataset

from ...registry import DATASETS, ConfigError
from ..image_io import IMG_EXTENSIONS, read_image
from ..transforms import compose


class _ClassificationBase(Dataset):
    samples: List[Tuple[str, int]]
    classes: List[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = read_image(path)
        size = tuple(image.shape[-2:])
        image, label = self.transforms(image, label)
        return image, label, {"index": index, "path": path, "orig_size": size, "input_size": tuple(image.shape[-2:])}


def _missing_root(root: str, key: str) -> ConfigError:
    return ConfigError(f"{key}: dataset folder '{root}' does not exist. Fix data.root in the config (or pass "
                       f"data.root=PATH), or create the built-in data with the run script / datasets/ generator.")


@DATASETS.register()
class ImageFolderDataset(_ClassificationBase):
    """``root/<class_name>/<image>`` (the ImageNet train/ and val/ layout). Classes are the sorted
    folder names unless ``classes`` lists them (then other folders are ignored)."""

    def __init__(self, root: str, transforms: Optional[Sequence] = None, classes: Optional[List[str]] = None,
                 extensions: Sequence[str] = IMG_EXTENSIONS):
        if not os.path.isdir(root):
            raise _missing_root(root, "ImageFolderDataset.root")
        found = sorted(d.name for d in os.scandir(root) if d.is_dir())
        if not found:
            raise ConfigError(f"ImageFolderDataset: '{root}' has no class sub-folders; expected root/<class>/<image>")
        self.classes = list(classes) if classes else found
        missing = [c for c in self.classes if c not in found]
        if missing:
            raise ConfigError(f"ImageFolderDataset: class folder(s) {missing} listed in 'classes' are missing in {root}")
        exts = tuple(e.lower() for e in extensions)
        self.samples = []
        for label, name in enumerate(self.classes):
            folder = os.path.join(root, name)
            files = sorted(f for f in os.listdir(folder) if f.lower().endswith(exts))
            if not files:
                raise ConfigError(f"ImageFolderDataset: class folder '{folder}' has no images (extensions {', '.join(exts)}). "
                                  f"Add images or remove the folder.")
            self.samples += [(os.path.join(folder, f), label) for f in files]
        self.root = root
        self.transforms = compose(transforms)


@DATASETS.register()
class ImageListDataset(_ClassificationBase):
    """A text file with one ``relative/path.jpg <label>`` per line (label: integer index, or a class
    name when ``classes`` is given); paths are relative to ``root``."""

    def __init__(self, root: str, list_file: str, transforms: Optional[Sequence] = None,
                 classes: Optional[List[str]] = None):
        if not os.path.isdir(root):
            raise _missing_root(root, "ImageListDataset.root")
        if not os.path.isfile(list_file):
            raise ConfigError(f"ImageListDataset.list_file: '{list_file}' does not exist")
        self.samples = []
        names = list(classes) if classes else None
        max_label = -1
        with open(list_file) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    rel, lab = line.rsplit(maxsplit=1)
                except ValueError:
                    raise ConfigError(f"{list_file}:{lineno}: expected '<path> <label>', got '{line}'") from None
                if names is not None and not lab.lstrip("-").isdigit():
                    if lab not in names:
                        raise ConfigError(f"{list_file}:{lineno}: label '{lab}' is not in classes")
                    label = names.index(lab)
                elif lab.isdigit():
                    label = int(lab)
                else:
                    raise ConfigError(f"{list_file}:{lineno}: label '{lab}' is not a non-negative integer "
                                      f"(or give 'classes' to use names)")
                max_label = max(max_label, label)
                self.samples.append((os.path.join(root, rel), label))
        if not self.samples:
            raise ConfigError(f"ImageListDataset: {list_file} lists no images")
        self.classes = names or [str(i) for i in range(max_label + 1)]
        if max_label >= len(self.classes):
            raise ConfigError(f"{list_file}: label {max_label} is out of range for {len(self.classes)} classes")
        self.root = root
        self.transforms = compose(transforms)
