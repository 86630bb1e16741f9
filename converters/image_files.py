"""Image files checked with Pillow: size from the header (or decoded pixels), problems as one-line messages."""
import collections

ImageInfo = collections.namedtuple("ImageInfo", "width height bands mode format pixels")

JPEG_EOI = b"\xff\xd9"
TAIL = 4096  # bytes read from a JPEG's end to find its end-of-image marker (after zero padding)


def inspect_image(path, problems, formats=None, pixels=False, what="image", expected="an image", complete=True):
    """ImageInfo for `path`, or None after appending a problem naming the file.

    Only the header is read unless `pixels` asks for the decoded array (as
    stored: palette indices stay indices). `formats` limits Pillow's format
    names, e.g. ("JPEG",). With `complete` (the default) a file cut short is a
    problem too, found without decoding where the format allows it: a JPEG must
    end with its end-of-image marker (if it does not, it is decoded at 1/8 scale,
    which still reads every byte of its scan data, to tell bytes after the marker
    from a cut), a PNG's chunks are read up to IEND with their checksums.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as handle, Image.open(handle) as image:
            if formats and image.format not in formats:
                problems.append("{}: is a {} file (expected {})".format(path, image.format, expected))
                return None
            info = ImageInfo(image.width, image.height, len(image.getbands()), image.mode, image.format, None)
            if pixels:
                import numpy as np

                image.load()  # a cut file fails here: decoding reads it all
                return info._replace(pixels=np.asarray(image))
            if complete:
                reason = _incomplete(image, handle)
                if reason:
                    problems.append("{}: truncated or corrupt {} (expected {}): {}".format(path, what, expected, reason))
                    return None
            return info
    except UnidentifiedImageError:
        problems.append("{}: unreadable {} (expected {}): not a recognised image format".format(path, what, expected))
    except Exception as err:  # Pillow's decoders raise many kinds (OSError, SyntaxError, struct.error, ...)
        reason = " ".join(str(err).split()) or type(err).__name__
        problems.append("{}: unreadable {} (expected {}): {}".format(path, what, expected, reason[:200]))
    return None


def _incomplete(image, handle):
    """Why the file of an opened image is cut short or corrupt, or None when it looks whole."""
    if image.format == "JPEG":
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - TAIL))
        if handle.read().rstrip(b"\x00").endswith(JPEG_EOI):
            return None
        try:  # no marker at the end: bytes after it (some cameras add them) or a cut? Decoding tells.
            image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
        except Exception as err:  # as above
            return "no JPEG end-of-image marker, and decoding fails: " + (" ".join(str(err).split()) or type(err).__name__)
        return None
    if image.format == "PNG":
        try:
            image.verify()  # reads every chunk up to IEND and checks its CRC, without inflating the pixels
        except Exception as err:  # as above
            return "PNG chunks cut short or damaged: " + (" ".join(str(err).split()) or type(err).__name__)
    return None
