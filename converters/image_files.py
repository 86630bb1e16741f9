"""Image files checked with Pillow: size from the header (or decoded pixels), problems as one-line messages."""
import collections

ImageInfo = collections.namedtuple("ImageInfo", "width height bands mode format pixels")


def inspect_image(path, problems, formats=None, pixels=False, what="image", expected="an image"):
    """ImageInfo for `path`, or None after appending a problem naming the file.

    Only the header is read unless `pixels` asks for the decoded array (as
    stored: palette indices stay indices). `formats` limits Pillow's format
    names, e.g. ("JPEG",).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if formats and image.format not in formats:
                problems.append("{}: is a {} file (expected {})".format(path, image.format, expected))
                return None
            data = None
            if pixels:
                import numpy as np

                image.load()
                data = np.asarray(image)
            return ImageInfo(image.width, image.height, len(image.getbands()), image.mode, image.format, data)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        reason = "not a recognised image format" if isinstance(err, UnidentifiedImageError) else str(err) or type(err).__name__
        problems.append("{}: unreadable {} (expected {}): {}".format(path, what, expected, reason))
        return None
