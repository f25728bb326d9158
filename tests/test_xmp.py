"""The XMP a restoration keeps (`ncvsd_cli.xmp.kept_xmp`, `images.xmp_kept`), and where it is written."""

import io
import struct
from xml.dom import minidom

import numpy as np
import pytest
from PIL import Image

from ncvsd_cli import images
from ncvsd_cli.xmp import JPEG_XMP_BYTES, RDF, kept_xmp, sized

#: A photo's XMP as Lightroom and a phone write it: attribute and element properties over two descriptions.
PHOTO_XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
    xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmp:Rating="4" xmp:CreatorTool="Lightroom" crs:Exposure2012="+0.50" tiff:Orientation="6"
    GCamera:MicroVideoOffset="123456" exif:GPSLatitude="52,30.2N" exif:PixelXDimension="4032" tiff:XResolution="300"
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
    b'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'.decode().encode("utf-16"),
    PHOTO_XMP.replace(b"<dc:format>", b"<dc:a>" * 3000 + b"</dc:a>" * 3000 + b"<dc:format>"),  # nested too deep
    (b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
     b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'),  # nothing kept
])
def test_no_packet_is_kept_from_what_cannot_or_need_not_be_kept(packet):
    assert kept_xmp(packet) is None


@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_packets_in_every_encoding_xmp_allows_are_read(codec):
    assert kept_xmp((PHOTO_XMP.decode() + "\x00").encode(codec)) == kept_xmp(PHOTO_XMP)  # (a NUL's padding)


def test_line_breaks_tabs_and_carriage_returns_survive_in_nested_attributes_and_text():
    """Values keep their tabs, line feeds and carriage returns wherever they are (a struct field's attribute, an
    element's text), written as character references: raw in an attribute a reader turns them into spaces."""
    packet = PHOTO_XMP.replace(b"<crs:ToneCurvePV2012>", b'<I:CreatorContactInfo xmlns:I="http://iptc.org/std/'
                                                         b'Iptc4xmpCore/1.0/xmlns/" I:CiAdrExtadr="1 Main&#xA;Flat'
                                                         b'&#x9;2&#xD;"/><crs:ToneCurvePV2012>')
    packet = packet.replace(b"<rdf:li>Rottnest</rdf:li>", b"<rdf:li>a&#xD;&#xA;b</rdf:li>")
    doc = minidom.parseString(kept_xmp(packet))
    info = doc.getElementsByTagNameNS("http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/", "CreatorContactInfo")[0]
    assert info.getAttribute("I:CiAdrExtadr") == "1 Main\nFlat\t2\r"
    assert [li.firstChild.data for li in doc.getElementsByTagNameNS(RDF, "li")][:2] == ["quokka", "a\r\nb"]


def test_dynamic_depth_darktable_history_and_typed_nodes_are_filtered_too():
    packet = PHOTO_XMP.replace(b'xmp:Rating="4"', b'xmp:Rating="4" xmlns:Device="http://ns.google.com/photos/dd/1.0/'
                                                   b'device/" Device:Container="x" xmlns:darktable="http://darktable.'
                                                   b'sf.net/" darktable:history_end="3"')
    packet = packet.replace(b"</rdf:RDF>", b'<tiff:T xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/>'
                                           b"</rdf:RDF>")
    kept = kept_xmp(packet)
    assert b"Device:Container" not in kept and b"darktable:history" not in kept and b"tiff:T" not in kept
    assert _properties(kept) == _properties(kept_xmp(PHOTO_XMP))


def test_a_packet_too_large_for_a_jpeg_loses_its_history_first_and_jpegs_leave_the_rest_out():
    """A long edit history goes where the packet would not fit in a JPEG; a packet too large even so is kept for
    formats that hold it (PNG) and left out of JPEGs (no extended XMP)."""
    history = b"<xmpMM:History>" + b"saved " * (JPEG_XMP_BYTES // 6) + b"</xmpMM:History>"
    long = PHOTO_XMP.replace(b"<dc:format>", history + b"<dc:format>")
    assert kept_xmp(long) == kept_xmp(PHOTO_XMP).replace(b' photoshop:History="opened&#xA;saved"', b"")
    huge = PHOTO_XMP.replace(b"<rdf:li>quokka</rdf:li>", b"<rdf:li>quokka</rdf:li>" * (JPEG_XMP_BYTES // 20))
    kept = kept_xmp(huge)
    assert len(kept) > JPEG_XMP_BYTES
    x = images.read_image(_photo_with_xmp()).tensor
    assert images.read_image(images.encode_image(x, "PNG", xmp=kept)).xmp == kept
    assert images.read_image(images.encode_image(x, "JPEG", xmp=kept)).xmp is None


def test_regions_are_sized_to_the_written_image():
    """mwg-rs:AppliedToDimensions (attribute and element forms) becomes the written size; the normalised regions
    stay; a packet without regions is unchanged."""
    regions = (b'<mwg-rs:Regions xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/" '
               b'xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#" rdf:parseType="Resource">'
               b'<mwg-rs:AppliedToDimensions stDim:w="50" stDim:h="70" stDim:unit="pixel"/>'
               b'<mwg-rs:RegionList><rdf:Bag><rdf:li><rdf:Description><mwg-rs:AppliedToDimensions rdf:parseType='
               b'"Resource"><stDim:w>50</stDim:w><stDim:h>70</stDim:h></mwg-rs:AppliedToDimensions>'
               b'</rdf:Description></rdf:li></rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>')
    kept = kept_xmp(PHOTO_XMP.replace(b"<dc:format>", regions + b"<dc:format>"))
    out = sized(kept, 20, 28)
    assert out.count(b'stDim:w="20"') == 1 and out.count(b"<stDim:h>28</stDim:h>") == 1 and b"RegionList" in out
    assert sized(kept_xmp(PHOTO_XMP), 20, 28) == kept_xmp(PHOTO_XMP)
    x = images.read_image(_photo_with_xmp()).tensor
    assert images.read_image(images.encode_image(x, "PNG", xmp=kept)).xmp == sized(kept, x.shape[-1], x.shape[-2])


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


def _iim_block(datasets: list[tuple[int, bytes]], utf8: bool = True) -> bytes:
    """An IPTC-IIM block: 1:90 declaring UTF-8 (when `utf8`), then record 2's (dataset, value) in order."""
    out = b"\x1c\x01\x5a\x00\x03\x1b%G" if utf8 else b""
    for dataset, value in datasets:
        out += bytes([0x1C, 2, dataset]) + struct.pack(">H", len(value)) + value
    return out


def _jpeg_with_iim(iim: bytes, xmp: bytes | None = None) -> bytes:
    """A JPEG with `iim` in an APP13 segment (Photoshop's image resource 0x0404), as Photoshop, Picasa and
    exiftool write it (checked with exiftool -validate), and `xmp` in APP1 when given."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(buf, "JPEG", **({"xmp": xmp} if xmp else {}))
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iim)) + iim + b"\x00" * (len(iim) % 2)
    body = b"Photoshop 3.0\x00" + resource
    jpeg = buf.getvalue()
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def test_an_iim_block_is_carried_into_xmp():
    """A JPEG with IPTC-IIM only (Picasa's keywords, a caption, a by-line, date and time created, a city) keeps
    them as XMP (dc:subject in order, dc:description, dc:creator, photoshop:DateCreated with its zone, City)."""
    iim = _iim_block([(25, b"Rottnest"), (25, b"quokka"), (120, "Caf\u00e9".encode()), (80, b"Jane Doe"),
                      (55, b"20190704"), (60, b"101530+0800"), (90, b"Perth"), (10, b"5")])
    kept = images.read_image(_jpeg_with_iim(iim)).xmp
    assert _properties(kept) == {"dc:subject": "Rottnest", "dc:description": "Caf\u00e9", "dc:creator": "Jane Doe",
                                 "photoshop:DateCreated": "2019-07-04T10:15:30+08:00", "photoshop:City": "Perth"}
    bag = minidom.parseString(kept).getElementsByTagNameNS("http://purl.org/dc/elements/1.1/", "subject")[0]
    assert [li.firstChild.data for li in bag.getElementsByTagNameNS(RDF, "li")] == ["Rottnest", "quokka"]
    assert kept_xmp(kept) == kept


def test_xmp_comes_first_and_undeclared_iim_text_is_read_as_windows_1252():
    """Where the XMP has a property (keywords) the IIM's is not added; the IIM's others (a city) are; undeclared
    IIM text that is not UTF-8 is read as Windows-1252 (as Western tools wrote it)."""
    iim = _iim_block([(25, b"old keyword"), (90, b"Z\xfcrich")], utf8=False)
    kept = images.read_image(_jpeg_with_iim(iim, xmp=PHOTO_XMP)).xmp
    props = _properties(kept)
    assert props["dc:subject"] == "quokka" and props["photoshop:City"] == "Z\u00fcrich"
    assert b"old keyword" not in kept
    assert kept_xmp(None, {(2, 25): [b" "], (2, 55): b"2019"}) is None  # blank keyword, broken date: nothing


def test_odd_iim_blocks_lose_only_what_cannot_be_carried():
    """An empty repeat of a dataset (None from Pillow) and a repeated 1:90 leave the rest standing; control
    characters XML does not allow are left out of the text (the packet stays readable); a date with an unknown
    month or day (00) is cut to what is known; an empty XMP keyword list takes the IIM's keywords."""
    iim = {(1, 90): [b"\x1b%G", b"\x1b%G"], (2, 25): [b"a", None], (2, 120): b"cap\x0bti\x00on", (2, 55): b"20190000"}
    props = _properties(kept_xmp(PHOTO_XMP, iim))
    assert props["photoshop:DateCreated"] == "2019" and props["dc:description"] == "caption"
    assert props["dc:subject"] == "quokka"  # the XMP's
    assert _properties(kept_xmp(None, {(2, 55): b"20190500", (2, 60): b"101530"}))["photoshop:DateCreated"] == "2019-05"
    empty_bag = PHOTO_XMP.replace(b"<rdf:li>quokka</rdf:li><rdf:li>Rottnest</rdf:li>", b"")
    kept = kept_xmp(empty_bag, {(2, 25): [b"kiwi"]})
    assert _properties(kept)["dc:subject"] == "kiwi" and kept.count(b"<dc:subject>") == 1
    d = images.read_image(_jpeg_with_iim(_iim_block([(25, b"a"), (25, b""), (120, b"cap\x0btion")]),
                                         xmp=PHOTO_XMP))
    assert d.xmp is not None and images.read_image(images.encode_image(d.tensor, "JPEG", xmp=d.xmp)).xmp == d.xmp


def test_a_pngs_title_author_description_and_copyright_chunks_are_carried_into_xmp():
    """PNG text chunks of the predefined keywords (tEXt, zTXt, iTXt) become dc: properties, where the XMP lacks
    them; other keywords (Software, an image generator's parameters) are not carried."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "A quokka")
    info.add_text("Copyright", "CC BY 4.0", zip=True)
    info.add_itxt("Description", "Caf\u00e9 \u00e0 Rottnest", lang="fr")
    info.add_text("Author", "Jane Doe")
    info.add_text("Software", "GIMP")
    info.add_text("parameters", "a cat, steps 20")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(buf, "PNG", pnginfo=info)
    kept = images.read_image(buf.getvalue()).xmp
    assert _properties(kept) == {"dc:title": "A quokka", "dc:rights": "CC BY 4.0", "dc:creator": "Jane Doe",
                                 "dc:description": "Caf\u00e9 \u00e0 Rottnest"}
    assert _properties(kept_xmp(PHOTO_XMP, png_text={"Title": "other", "Author": "Jane"}))["dc:title"] == (
        "Caf\u00e9 \u00e0 Rottnest")  # the XMP's title comes first


def test_the_label_replaces_the_originals_source_type_and_keeps_the_rest():
    """`labelled` writes one Digital Source Type and CreatorTool, the original's (a shorthand attribute here) gone."""
    from ncvsd_cli import __version__, xmp

    original = PHOTO_XMP.decode().replace('rdf:about=""', 'rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/'
                                 '2008-02-29/" Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/'
                                 'digitalsourcetype/digitalCapture"', 1)
    kept = xmp.kept_xmp(original)
    out = xmp.labelled(kept, xmp.EDITED_BY_AI).decode()
    doc = minidom.parseString(out[out.index("<x:xmpmeta"):out.index("<?xpacket end")])
    types = [n.firstChild.data for n in doc.getElementsByTagNameNS(xmp._IPTC_EXT, "DigitalSourceType")]
    assert types == [xmp.SOURCE_TYPES + xmp.EDITED_BY_AI] and "digitalCapture" not in out
    tools = [n.firstChild.data for n in doc.getElementsByTagNameNS(xmp._XMP, "CreatorTool")]
    assert tools == [f"ncvsd {__version__}"] and "Rottnest" in out  # the picture's own properties stay
    assert xmp.labelled(xmp.labelled(None, xmp.GENERATED), xmp.ENHANCED).count(b"DigitalSourceType>") == 2


def test_a_jpeg_too_small_for_the_whole_packet_keeps_its_ai_label():
    """An input XMP of ~65 KB plus the label no longer fit a JPEG's segment: the whole packet, label included,
    was dropped (an AI-edited JPEG shipped unlabelled)."""
    import torch

    from ncvsd_cli import xmp

    big = PHOTO_XMP.decode().replace("Rottnest", "Rottnest " + "x" * JPEG_XMP_BYTES, 1)
    packet = xmp.labelled(big.encode(), xmp.EDITED_BY_AI)
    assert len(packet) > JPEG_XMP_BYTES
    data = images.encode_image(torch.zeros(1, 3, 8, 8), "JPEG", xmp=packet)
    kept = Image.open(io.BytesIO(data)).info["xmp"]
    assert b"compositeWithTrainedAlgorithmicMedia" in kept and b"Rottnest" not in kept
    small = images.encode_image(torch.zeros(1, 3, 8, 8), "JPEG", xmp=xmp.labelled(PHOTO_XMP, xmp.GENERATED))
    assert b"Rottnest" in Image.open(io.BytesIO(small)).info["xmp"]  # (what fits is kept whole)
    assert xmp.label_only(PHOTO_XMP) is None  # no label: nothing


def test_the_settings_that_made_an_output_are_written_and_an_inputs_are_replaced():
    """`labelled(..., made_with)` writes ncvsd:<name> properties that `made_with` reads back; an input's earlier
    ncvsd settings are not carried (a restoration of a restoration is described by its own), and a JPEG too small
    for the packet keeps them with the label."""
    import torch

    from ncvsd_cli import xmp

    first = xmp.labelled(PHOTO_XMP, xmp.EDITED_BY_AI, (("Task", "sr4"), ("Seed", "7"), ("Sample", "2 of 4")))
    assert xmp.made_with(first) == {"Task": "sr4", "Seed": "7", "Sample": "2 of 4"} and b"Rottnest" in first
    again = xmp.labelled(xmp.kept_xmp(first), xmp.EDITED_BY_AI, (("Task", "denoise"), ("Seed", "0")))
    assert xmp.made_with(again) == {"Task": "denoise", "Seed": "0"} and b"Rottnest" in again
    assert xmp.made_with(xmp.kept_xmp(first)) == {} and xmp.made_with(None) == {}
    big = PHOTO_XMP.decode().replace("Rottnest", "Rottnest " + "x" * JPEG_XMP_BYTES, 1)
    data = images.encode_image(torch.zeros(1, 3, 8, 8), "JPEG",
                               xmp=xmp.labelled(big.encode(), xmp.EDITED_BY_AI, (("Seed", "3"),)))
    assert xmp.made_with(Image.open(io.BytesIO(data)).info["xmp"]) == {"Seed": "3"}
    assert xmp.made_with(xmp.labelled(None, xmp.GENERATED, (("Model", "a\x01b\ud800"),))) == {
        "Model": "a\ufffdb\ufffd"}  # (a lone surrogate raised UnicodeEncodeError)
    other = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
             f'<rdf:Description rdf:about="" xmlns:ncvsd="{xmp.NCVSD_NS}" ncvsd:Task="sr4"><ncvsd:Seeds><rdf:Bag>'
             "<rdf:li>1</rdf:li></rdf:Bag></ncvsd:Seeds></rdf:Description></rdf:RDF></x:xmpmeta>")
    assert xmp.made_with(other) == {"Task": "sr4", "Seeds": ""}  # another writer's forms: read, no crash
