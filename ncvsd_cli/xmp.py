"""The XMP metadata a restoration keeps: a photo's title, caption, keywords, rating, creator, rights and place
(XMP, ISO 16684-1, as Lightroom, digiKam, darktable and phones write it), without what describes the original
file rather than the picture.

Left out, as `images.exif_kept` leaves out the EXIF that describes the file:
- whole namespaces (DROPPED_NAMESPACES) that describe data or edits not in the output: Camera Raw / Lightroom
  develop settings (an editor that reads them re-applies the edits on top of the already developed pixels),
  phones' embedded motion-photo videos, depth maps, gain maps and panorama geometry (offsets and pixel sizes in the
  original file), and the pointer to an extended XMP that is not copied;
- single properties (DROPPED_PROPERTIES): the orientation (already applied to the pixels), pixel sizes and
  positions (a restoration may turn or resize the image), the file's layout and MIME type, the software that made
  it, its thumbnail and its document / instance IDs (a restoration is another image).

Only the top-level properties of each rdf:Description are filtered; the packet is parsed by the standard library's
expat (DTDs are refused before parsing: XMP allows none) and written without padding.
"""

from __future__ import annotations

from xml.dom import minidom
from xml.parsers.expat import ExpatError

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMLNS = "http://www.w3.org/2000/xmlns/"
_TIFF = "http://ns.adobe.com/tiff/1.0/"
_EXIF = "http://ns.adobe.com/exif/1.0/"
_XMP = "http://ns.adobe.com/xap/1.0/"
_XMP_MM = "http://ns.adobe.com/xap/1.0/mm/"

#: Namespaces left out whole (see the module docstring).
DROPPED_NAMESPACES = frozenset({
    "http://ns.adobe.com/camera-raw-settings/1.0/",  # crs: Camera Raw / Lightroom develop settings
    "http://ns.adobe.com/xmp/note/",  # xmpNote:HasExtendedXMP, the extended packet's ID
    "http://ns.adobe.com/hdr-gain-map/1.0/",  # hdrgm: an Ultra HDR gain map in the original
    "http://ns.apple.com/HDRGainMap/1.0/",
    "http://ns.google.com/photos/1.0/camera/",  # GCamera: motion photo, burst, special type
    "http://ns.google.com/photos/1.0/container/",  # Container / Item: images and videos appended to the file
    "http://ns.google.com/photos/1.0/container/item/",
    "http://ns.google.com/photos/1.0/depthmap/",  # GDepth / GImage / GAudio: embedded depth map, image, audio
    "http://ns.google.com/photos/1.0/image/",
    "http://ns.google.com/photos/1.0/audio/",
    "http://ns.google.com/photos/1.0/panorama/",  # GPano: the panorama's crop in pixels
})
#: (namespace, name) of single properties left out (see the module docstring).
DROPPED_PROPERTIES = frozenset({
    *((_TIFF, name) for name in ("Orientation", "ImageWidth", "ImageLength", "BitsPerSample", "Compression",
                                 "PhotometricInterpretation", "SamplesPerPixel", "PlanarConfiguration",
                                 "YCbCrSubSampling", "YCbCrPositioning", "NativeDigest")),
    *((_EXIF, name) for name in ("PixelXDimension", "PixelYDimension", "SubjectArea", "SubjectLocation",
                                 "FocalPlaneXResolution", "FocalPlaneYResolution", "FocalPlaneResolutionUnit",
                                 "ImageUniqueID", "NativeDigest")),
    (_XMP, "CreatorTool"), (_XMP, "Thumbnails"), (_XMP_MM, "DocumentID"), (_XMP_MM, "InstanceID"),
    ("http://purl.org/dc/elements/1.1/", "format"),
    ("http://ns.adobe.com/photoshop/1.0/", "DocumentAncestors"),  # IDs of placed files (it grows to megabytes)
})
#: The largest packet kept: what one JPEG APP1 segment holds after its "http://ns.adobe.com/xap/1.0/\0" header.
MAX_XMP_BYTES = 65502
#: The largest packet read (a larger one is not parsed).
MAX_READ_BYTES = 4 * 2**20
_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
_END = '<?xpacket end="w"?>'


def _dropped(namespace: str | None, name: str | None) -> bool:
    return namespace in DROPPED_NAMESPACES or (namespace, name) in DROPPED_PROPERTIES


def _filter_description(desc: minidom.Element) -> int:
    """Remove the dropped properties of one rdf:Description (attributes and child elements); the number left."""
    for attr in list(desc.attributes.values()):
        if _dropped(attr.namespaceURI, attr.localName):  # (namespace declarations stay: a kept value may use one)
            desc.removeAttributeNode(attr)
        elif any(c in attr.value for c in "\t\n\r") and attr.namespaceURI not in (XMLNS, RDF):
            element = desc.ownerDocument.createElementNS(attr.namespaceURI, attr.name)  # the same property as an
            element.appendChild(desc.ownerDocument.createTextNode(attr.value))  # element: minidom writes these
            desc.removeAttributeNode(attr)  # characters raw in an attribute, which a reader turns into spaces
            desc.appendChild(element)
    for child in list(desc.childNodes):
        if child.nodeType == child.ELEMENT_NODE and _dropped(child.namespaceURI, child.localName):
            if child.previousSibling is not None and child.previousSibling.nodeType == child.TEXT_NODE:
                desc.removeChild(child.previousSibling)  # its indentation
            desc.removeChild(child)
    attrs = [a for a in desc.attributes.values() if a.namespaceURI not in (XMLNS, RDF) and a.name != "xmlns"]
    return len(attrs) + sum(c.nodeType == c.ELEMENT_NODE for c in desc.childNodes)


def kept_xmp(packet: bytes | str | None) -> bytes | None:
    """The XMP packet a restoration keeps (UTF-8 bytes with the xpacket wrapper, for Pillow's `xmp=`): `packet`
    (an image file's XMP) less DROPPED_NAMESPACES and DROPPED_PROPERTIES; None where nothing is left, the packet is
    not well-formed RDF, holds a DTD, is larger than MAX_READ_BYTES or, filtered, than MAX_XMP_BYTES."""
    if not packet:
        return None
    data = packet.encode("utf-8") if isinstance(packet, str) else bytes(packet)
    if len(data) > MAX_READ_BYTES or b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return None
    try:
        doc = minidom.parseString(data.rstrip(b"\x00 \t\r\n"))
    except (ExpatError, ValueError):
        return None
    rdf = doc.getElementsByTagNameNS(RDF, "RDF")
    if not rdf:
        return None
    left = 0
    for desc in [d for d in rdf[0].childNodes
                 if d.nodeType == d.ELEMENT_NODE and (d.namespaceURI, d.localName) == (RDF, "Description")]:
        kept = _filter_description(desc)
        if not kept:
            rdf[0].removeChild(desc)
        left += kept
    if not left:
        return None
    out = (_BEGIN + doc.documentElement.toxml() + _END).encode("utf-8")
    return out if len(out) <= MAX_XMP_BYTES else None
