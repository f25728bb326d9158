"""The XMP a restoration keeps (`ncvsd_cli.xmp.kept_xmp`, `images.xmp_kept`), and where it is written."""

import io
from xml.dom import minidom

import numpy as np
import pytest
from PIL import Image

from ncvsd_cli import images
from ncvsd_cli.xmp import MAX_XMP_BYTES, RDF, kept_xmp

#: A photo's XMP as Lightroom and a phone write it: attribute and element properties over two descriptions.
PHOTO_XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
    xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmp:Rating="4" xmp:CreatorTool="Lightroom" crs:Exposure2012="+0.50" tiff:Orientation="6"
    GCamera:MicroVideoOffset="123456" exif:GPSLatitude="52,30.2N" exif:PixelXDimension="4032"
    photoshop:History="opened&#xA;saved">
   <crs:ToneCurvePV2012><rdf:Seq><rdf:li>0, 0</rdf:li></rdf:Seq></crs:ToneCurvePV2012>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/">
   <dc:subject><rdf:Bag><rdf:li>quokka</rdf:li><rdf:li>Rottnest</rdf:li></rdf:Bag></dc:subject>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Caf\u00e9 \u00e0 Rottnest</rdf:li></rdf:Alt></dc:title>
   <dc:format>image/jpeg</dc:format>
   <xmpMM:InstanceID>xmp.iid:1234</xmpMM:InstanceID>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0"/>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


def _properties(packet: bytes) -> dict[str, str]:
    """{prefix:name: text} of the top-level properties of every rdf:Description (attributes and elements)."""
    doc = minidom.parseString(packet)
    out = {}
    for desc in doc.getElementsByTagNameNS(RDF, "Description"):
        if desc.parentNode.localName != "RDF":
            continue
        out.update({a.name: a.value for a in desc.attributes.values() if ":" in a.name and a.prefix != "xmlns"
                    and a.name != "rdf:about"})
        out.update({c.tagName: "".join(t.data for t in c.getElementsByTagNameNS(RDF, "li")[0].childNodes
                                       if t.nodeType == t.TEXT_NODE) if c.getElementsByTagNameNS(RDF, "li")
                    else "".join(t.data for t in c.childNodes if t.nodeType == t.TEXT_NODE)
                    for c in desc.childNodes if c.nodeType == c.ELEMENT_NODE})
    return out


def test_the_picture_is_kept_not_the_file_nor_its_edits():
    """Title, keywords, rating, GPS and history are kept (the history's line break too, though minidom would write
    it raw into an attribute, where a reader reads a space); develop settings, orientation, pixel sizes, embedded
    motion photo, gain map, MIME type, software and instance ID are not; a description left empty goes; the result
    is a fixed point."""
    kept = kept_xmp(PHOTO_XMP)
    props = _properties(kept)
    assert props == {"xmp:Rating": "4", "exif:GPSLatitude": "52,30.2N", "photoshop:History": "opened\nsaved",
                     "dc:subject": "quokka", "dc:title": "Caf\u00e9 \u00e0 Rottnest"}
    assert kept.startswith(b"<?xpacket begin=") and kept.endswith(b'<?xpacket end="w"?>')
    assert len(minidom.parseString(kept).getElementsByTagNameNS(RDF, "Description")) == 2
    assert kept_xmp(kept) == kept
    assert kept_xmp(PHOTO_XMP.decode()) == kept  # (PNG's iTXt comes as text)


@pytest.mark.parametrize("packet", [
    None, b"", b"not xml <", b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>",  # nothing, broken, no RDF
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>',  # a DTD
    PHOTO_XMP.replace(b"quokka", b"q" * MAX_XMP_BYTES),  # too large for a JPEG segment once filtered
    (b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
     b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'),  # nothing kept
])
def test_no_packet_is_kept_from_what_cannot_or_need_not_be_kept(packet):
    assert kept_xmp(packet) is None


def _photo_with_xmp() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)).save(
        buf, "JPEG", xmp=PHOTO_XMP)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "bits"), [("JPEG", 8), ("PNG", 8), ("PNG", 16), ("WEBP", 8), ("TIFF", 8),
                                           ("TIFF", 16), ("AVIF", 8), ("HEIF", 8), ("HEIF", 16)])
def test_the_kept_xmp_is_written_where_the_format_holds_it_and_read_back(fmt, bits):
    """read_image keeps a JPEG's filtered XMP; encode_image(xmp=) writes it into JPEG, PNG (16-bit: an iTXt chunk),
    WebP, TIFF (16-bit: tag 700), AVIF and HEIC (10-bit too), and read_image reads the same packet back."""
    from PIL import features

    if fmt == "HEIF":
        pytest.importorskip("pillow_heif")
    if fmt == "AVIF" and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF")
    d = images.read_image(_photo_with_xmp())
    assert d.xmp == kept_xmp(PHOTO_XMP)
    back = images.read_image(images.encode_image(d.tensor, fmt, bit_depth=bits, xmp=d.xmp))
    assert back.xmp == d.xmp
    assert images.read_image(images.encode_image(d.tensor, fmt, bit_depth=bits)).xmp is None
