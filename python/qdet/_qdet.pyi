from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

class QdetError(Exception):
    """A qdet failure: an unreadable model or image, with the reason."""

def set_threads(n: int) -> None:
    """Kernel threads per inference (fixed by the first call; another count later raises QdetError)."""

class Detector:
    def __init__(
        self,
        model: str,
        conf: float = 0.25,
        iou: float = 0.7,
        imgsz: Optional[Tuple[int, int]] = None,
        classes: Optional[Sequence[int]] = None,
        max_det: int = 300,
        agnostic: bool = False,
    ) -> None: ...
    @property
    def names(self) -> List[str]: ...
    @property
    def imgsz(self) -> Tuple[int, int]: ...
    def detect_path(self, path: str) -> Detections: ...
    def detect_bytes(self, data: bytes) -> Detections: ...
    def detect_array(self, array: npt.NDArray[np.uint8], bgr: bool = False) -> Detections: ...

class Detections:
    @property
    def xyxy(self) -> npt.NDArray[np.float32]:
        """Nx4 boxes x1, y1, x2, y2 in pixels of the upright image."""
    @property
    def conf(self) -> npt.NDArray[np.float32]: ...
    @property
    def cls(self) -> npt.NDArray[np.int64]: ...
    @property
    def names(self) -> List[str]: ...
    @property
    def shape(self) -> Tuple[int, int]:
        """(height, width) of the image."""
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Tuple[float, float, float, float, float, int, str]]: ...
    def row(self, i: int) -> Tuple[float, float, float, float, float, int, str]: ...
    def to_labelme(self, image_path: str = "image.jpg") -> str:
        """The labelme JSON `qdet detect` writes for this image."""
    def to_yolo(self, save_conf: bool = False) -> str:
        """The YOLO txt lines `qdet detect --save-txt` writes."""
