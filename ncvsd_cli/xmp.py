"""The XMP metadata a restoration keeps: a photo's title, caption, keywords, rating, creator, rights and place
(XMP, ISO 16684-1, as Lightroom, digiKam, darktable and phones write it), without what describes the original
file rather than the picture. A PNG's Title, Author, Description and Copyright text chunks, and a JPEG's or TIFF's
IPTC-IIM block (older tools and Picasa wrote captions and keywords
there only) is carried over as the XMP properties the IPTC Photo Metadata Standard maps it to (IIM_TO_XMP), where
the XMP does not have them already or has them empty (the Metadata Working Group's rule, simplified: XMP first;
its check of photoshop:LegacyIPTCDigest, which prefers an IIM block edited after the XMP, is not made).

Left out, as `images.exif_kept` leaves out the EXIF that describes the file:
- whole namespaces (DROPPED_NAMESPACES, DROPPED_NAMESPACE_PREFIXES) that describe data or edits not in the
  output: Camera Raw / Lightroom and darktable develop settings (an editor that reads them re-applies the edits on
  top of the already developed pixels), phones' embedded motion-photo videos, depth maps (Google's and Dynamic
  Depth), gain maps and panorama geometry (offsets and pixel sizes in the original file), and the pointer to an
  extended XMP that is not copied;
- single properties (DROPPED_PROPERTIES): the orientation (already applied to the pixels), pixel sizes and
  positions (a restoration may turn or resize the image), the file's layout, colour mode, colour profile's name
  (the output embeds its own) and MIME type, the software that made it, its thumbnail, its document / instance IDs
  (a restoration is another image) and Photoshop's lists of placed documents.

The top-level properties of each node of rdf:RDF are filtered; regions' mwg-rs:AppliedToDimensions is set to the
written size (`sized`). The packet (UTF-8, -16 or -32) is parsed by the standard library's expat, DTDs refused
(XMP allows none), and written in UTF-8 without padding, line breaks and tabs in values as character references.
"""

from __future__ import annotations

import functools
import re
from xml.dom import minidom
from xml.parsers.expat import ExpatError

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMLNS = "http://www.w3.org/2000/xmlns/"
_TIFF = "http://ns.adobe.com/tiff/1.0/"
_EXIF = "http://ns.adobe.com/exif/1.0/"
_XMP = "http://ns.adobe.com/xap/1.0/"
_XMP_MM = "http://ns.adobe.com/xap/1.0/mm/"
_DC = "http://purl.org/dc/elements/1.1/"
_PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
_IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
_XML = "http://www.w3.org/XML/1998/namespace"
_MWG_RS = "http://www.metadataworkinggroup.com/schemas/regions/"
_ST_DIM = "http://ns.adobe.com/xap/1.0/sType/Dimensions#"
_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
#: The IPTC Digital Source Type vocabulary (cv.iptc.org/newscodes/digitalsourcetype): what `labelled` writes.
#: GENERATED: made by a trained model from noise (`ncvsd sample`); EDITED_BY_AI: a capture blended with a trained
#: model's output, as a restoration whose details a generative prior draws (IPTC: "Edited using Generative AI");
#: ENHANCED: corrected by an algorithm without a trained model (the classical baselines).
SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
GENERATED, EDITED_BY_AI, ENHANCED = "trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", \
    "algorithmicallyEnhanced"
#: The namespace of the settings that made an output (`labelled`'s `made_with`: ncvsd:Task, ncvsd:Method,
#: ncvsd:NFE, ncvsd:Seed, ncvsd:Sample, ncvsd:Model), so that a picture tells how to make it again. An input's
#: are left out (DROPPED_NAMESPACES): a restoration of a restoration is described by its own.
NCVSD_NS = "urn:ncvsd:xmp:1.0/"

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
    "http://darktable.sf.net/",  # darktable's develop history
    NCVSD_NS,  # an earlier ncvsd run's settings (`labelled` writes this one's)
})
#: Prefixes of namespace families left out whole: Dynamic Depth (Pixel portraits and depth photos: the device,
#: its cameras and the items appended to the file).
DROPPED_NAMESPACE_PREFIXES = ("http://ns.google.com/photos/dd/",)
#: (namespace, name) of single properties left out (see the module docstring).
DROPPED_PROPERTIES = frozenset({
    *((_TIFF, name) for name in ("Orientation", "ImageWidth", "ImageLength", "BitsPerSample", "Compression",
                                 "XResolution", "YResolution", "ResolutionUnit",  # (the output's own: `image_dpi`)
                                 "PhotometricInterpretation", "SamplesPerPixel", "PlanarConfiguration",
                                 "YCbCrSubSampling", "YCbCrPositioning", "NativeDigest")),
    *((_EXIF, name) for name in ("PixelXDimension", "PixelYDimension", "SubjectArea", "SubjectLocation",
                                 "FocalPlaneXResolution", "FocalPlaneYResolution", "FocalPlaneResolutionUnit",
                                 "ImageUniqueID", "NativeDigest")),
    (_XMP, "CreatorTool"), (_XMP, "Thumbnails"), (_XMP_MM, "DocumentID"), (_XMP_MM, "InstanceID"),
    (_XMP_MM, "Ingredients"), (_XMP_MM, "Pantry"), (_DC, "format"), (_PHOTOSHOP, "ColorMode"),
    (_PHOTOSHOP, "ICCProfile"), (_PHOTOSHOP, "DocumentAncestors"),  # (placed files' IDs: it grows to megabytes)
    (_PHOTOSHOP, "LegacyIPTCDigest"),  # (the digest of an IIM block the output does not have)
    (_IPTC_EXT, "DigitalSourceType"),  # (the original's, e.g. a camera's digitalCapture: `labelled` writes ours)
})
#: Properties also left out when the packet would not fit in a JPEG (JPEG_XMP_BYTES): edit histories.
BULKY_PROPERTIES = frozenset({(_XMP_MM, "History"), (_PHOTOSHOP, "History")})
#: IPTC-IIM datasets of record 2 carried into XMP (IPTC Photo Metadata Standard 2024.1, "IIM" mapping): dataset:
#: (namespace, property, container: "Alt" a language alternative, "Bag" / "Seq" a list, "" plain text). 55 / 60
#: (date and time created) become photoshop:DateCreated.
IIM_TO_XMP = {
    5: (_DC, "dc:title", "Alt"), 120: (_DC, "dc:description", "Alt"), 116: (_DC, "dc:rights", "Alt"),
    25: (_DC, "dc:subject", "Bag"), 80: (_DC, "dc:creator", "Seq"),
    105: (_PHOTOSHOP, "photoshop:Headline", ""), 110: (_PHOTOSHOP, "photoshop:Credit", ""),
    115: (_PHOTOSHOP, "photoshop:Source", ""), 85: (_PHOTOSHOP, "photoshop:AuthorsPosition", ""),
    122: (_PHOTOSHOP, "photoshop:CaptionWriter", ""), 40: (_PHOTOSHOP, "photoshop:Instructions", ""),
    103: (_PHOTOSHOP, "photoshop:TransmissionReference", ""), 90: (_PHOTOSHOP, "photoshop:City", ""),
    95: (_PHOTOSHOP, "photoshop:State", ""), 101: (_PHOTOSHOP, "photoshop:Country", ""),
    92: (_IPTC_CORE, "Iptc4xmpCore:Location", ""), 100: (_IPTC_CORE, "Iptc4xmpCore:CountryCode", ""),
}
#: A PNG's text chunks of predefined keywords (PNG 1.2, 11.3.4.2) carried into XMP, as IIM_TO_XMP: keyword:
#: (namespace, property, container).
PNG_TEXT_TO_XMP = {"Title": (_DC, "dc:title", "Alt"), "Author": (_DC, "dc:creator", "Seq"),
                   "Description": (_DC, "dc:description", "Alt"), "Copyright": (_DC, "dc:rights", "Alt")}
#: The largest packet a JPEG holds: one APP1 segment after its "http://ns.adobe.com/xap/1.0/\0" header (a larger
#: one would need extended XMP; `images.encode_image` leaves it out of JPEGs).
JPEG_XMP_BYTES = 65502
#: The largest packet read (a larger one is not parsed: parsing takes about 100x its size in memory).
MAX_READ_BYTES = 2 * 2**20
#: The deepest element nesting read (real packets: about 10).
MAX_DEPTH = 100
_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
_END = '<?xpacket end="w"?>'


def _filter_description(desc: minidom.Element, dropped: frozenset) -> set[tuple[str | None, str | None]]:
    """Remove the properties of one node of rdf:RDF (attributes and child elements) that are dropped (namespaces
    and DROPPED_PROPERTIES, and `dropped`) or empty; the (namespace, name) of those left."""
    def gone(namespace: str | None, name: str | None) -> bool:
        return (namespace in DROPPED_NAMESPACES or (namespace or "").startswith(DROPPED_NAMESPACE_PREFIXES)
                or (namespace, name) in DROPPED_PROPERTIES or (namespace, name) in dropped)

    for attr in list(desc.attributes.values()):
        if gone(attr.namespaceURI, attr.localName):  # (namespace declarations stay: a kept value may use one)
            desc.removeAttributeNode(attr)
    for child in list(desc.childNodes):
        if child.nodeType == child.ELEMENT_NODE and (gone(child.namespaceURI, child.localName)
                                                     or not _has_value(child)):
            if child.previousSibling is not None and child.previousSibling.nodeType == child.TEXT_NODE:
                desc.removeChild(child.previousSibling)  # its indentation
            desc.removeChild(child)
    attrs = [a for a in desc.attributes.values() if a.namespaceURI not in (None, XMLNS, RDF, _XML)]
    return {(a.namespaceURI, a.localName) for a in attrs} | {
        (c.namespaceURI, c.localName) for c in desc.childNodes if c.nodeType == c.ELEMENT_NODE}


def _has_value(prop: minidom.Element) -> bool:
    """Whether a property element holds anything: text, a list item, a field (an empty rdf:Bag is no value)."""
    if any(a.namespaceURI not in (XMLNS, RDF, _XML) or a.localName == "resource" for a in prop.attributes.values()):
        return True
    return any(c.nodeType in (c.TEXT_NODE, c.CDATA_SECTION_NODE) and c.data.strip()
               or c.nodeType == c.ELEMENT_NODE and _has_value(c) for c in prop.childNodes)


#: Characters XML 1.0 does not allow (C0 controls but tab, LF and CR; U+FFFE, U+FFFF): left out of IIM text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # (surrogates: no UTF-8)


def _iim_text(value: bytes, utf8: bool) -> str:
    """An IIM dataset's text: UTF-8 where the block declares it (1:90) or where it decodes as UTF-8, else
    Windows-1252 (what Western tools wrote undeclared); trailing NULs and blanks and characters XML does not allow
    removed."""
    value = value.rstrip(b"\x00 ")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("utf-8" if utf8 else "cp1252", errors="replace")
    return _NOT_XML.sub("", text)


def _iim_date(date: str, time: str) -> str | None:
    """photoshop:DateCreated from IIM 2:55 (CCYYMMDD; 00 an unknown month or day) and 2:60 (HHMMSS+HHMM):
    "CCYY[-MM[-DD[Thh:mm:ss+hh:mm]]]"."""
    if len(date) < 8 or not date[:8].isdigit() or date[:4] == "0000":
        return None
    if date[4:6] == "00":
        return date[:4]
    if date[6:8] == "00":
        return f"{date[:4]}-{date[4:6]}"
    out = f"{date[:4]}-{date[4:6]}-{date[6:8]}"
    if len(time) >= 6 and time[:6].isdigit():
        zone = f"{time[6]}{time[7:9]}:{time[9:11]}" if len(time) >= 11 and time[6] in "+-" else ""
        out += f"T{time[:2]}:{time[2:4]}:{time[4:6]}{zone}"
    return out


def _mapped(mapping: dict, values: dict) -> dict[tuple[str, str], tuple[str, str, list[str]]]:
    """{(namespace, name): (property, container, texts)} of `values` ({key: [text, ...]}) by `mapping` ({key:
    (namespace, property, container)}): blank texts left out, one text but in a list (Bag, Seq)."""
    out = {}
    for key, (namespace, name, container) in mapping.items():
        texts = [t for t in values.get(key, []) if t.strip()]
        if texts:
            out[namespace, name.split(":")[1]] = (name, container, texts if container in ("Bag", "Seq") else texts[:1])
    return out


def _png_text_properties(text: dict) -> dict[tuple[str, str], tuple[str, str, list[str]]]:
    """`_mapped` of a PNG's text chunks ({keyword: text}, Pillow's `info`) by PNG_TEXT_TO_XMP."""
    return _mapped(PNG_TEXT_TO_XMP, {k: [_NOT_XML.sub("", v)] for k, v in text.items() if isinstance(v, str)})


def _iim_properties(iim: dict) -> dict[tuple[str, str], tuple[str, str, list[str]]]:
    """`_mapped` of the IIM datasets by IIM_TO_XMP, with the date created (Pillow's
    `IptcImagePlugin.getiptcinfo`: {(record, dataset): bytes or [bytes, ...]})."""
    def items(key: tuple[int, int]) -> list[bytes]:  # (a repeated dataset is a list; an empty one may be None)
        got = iim.get(key)
        return [v for v in (got if isinstance(got, list) else [got]) if isinstance(v, (bytes, bytearray))]

    utf8 = any(b"\x1b%G" in v for v in items((1, 90)))
    values = {k[1]: [_iim_text(v, utf8) for v in items(k)] for k in iim if isinstance(k, tuple) and k[0] == 2}
    out = _mapped(IIM_TO_XMP, values)
    date = _iim_date(values.get(55, [""])[0], values.get(60, [""])[0])
    if date:
        out[_PHOTOSHOP, "DateCreated"] = ("photoshop:DateCreated", "", [date])
    return out


def _legacy_description(doc: minidom.Document, properties: dict) -> minidom.Element:
    """An rdf:Description of `properties` (`_iim_properties`, `_png_text_properties`), declaring every namespace it
    uses."""
    desc = doc.createElementNS(RDF, "rdf:Description")
    for namespace, prefix in {RDF: "rdf", **{ns: name.split(":")[0] for (ns, _), (name, _, _) in properties.items()}
                              }.items():  # (declarations first, as a parser lists them: a fixed point)
        desc.setAttributeNS(XMLNS, "xmlns:" + prefix, namespace)
    desc.setAttributeNS(RDF, "rdf:about", "")
    for (namespace, _), (name, container, texts) in properties.items():
        prop = desc.appendChild(doc.createElementNS(namespace, name))
        parent = prop.appendChild(doc.createElementNS(RDF, "rdf:" + container)) if container else prop
        for text in texts:
            item = parent.appendChild(doc.createElementNS(RDF, "rdf:li")) if container else parent
            if container == "Alt":
                item.setAttributeNS(_XML, "xml:lang", "x-default")
            item.appendChild(doc.createTextNode(text))
    return desc


def _text(packet: bytes | str) -> str | None:
    """A packet's text: UTF-32 or UTF-16 by its byte-order mark or its first character's zero bytes (XMP allows
    these and UTF-8), else UTF-8; None where it does not decode."""
    if isinstance(packet, str):
        return packet
    data = bytes(packet)
    codecs = {b"\x00\x00\xfe\xff": "utf-32", b"\xff\xfe\x00\x00": "utf-32", b"\x00\x00\x00<": "utf-32-be",
              b"<\x00\x00\x00": "utf-32-le"}
    codec = codecs.get(data[:4]) or {b"\xfe\xff": "utf-16", b"\xff\xfe": "utf-16", b"\x00<": "utf-16-be",
                                     b"<\x00": "utf-16-le"}.get(data[:2], "utf-8-sig")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _parsed(packet: bytes | str | None) -> minidom.Document | None:
    """The packet parsed, or None where it is absent, too large (MAX_READ_BYTES), holds a DTD (checked on the
    decoded text: no encoding hides one), does not decode, is not well-formed or nests deeper than MAX_DEPTH."""
    text = _text(packet) if packet and len(packet) <= MAX_READ_BYTES else None
    if text is None or "<!DOCTYPE" in text or "<!ENTITY" in text:
        return None
    try:
        doc = minidom.parseString(text.rstrip("\x00 \t\r\n"))
    except (ExpatError, ValueError, RecursionError):
        return None
    stack = [(doc.documentElement, 1)]
    while stack:  # (minidom walks trees recursively: a packet nested deeper than any XMP is not read)
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return None
        stack.extend((child, depth + 1) for child in node.childNodes)
    return doc


def _serialised(doc: minidom.Document) -> bytes | None:
    """The packet of `doc` (UTF-8 with the xpacket wrapper), tabs, line feeds and carriage returns in attribute
    values, and carriage returns in text, written as character references (minidom writes them raw, and a reader
    turns raw ones into spaces, or a CR into a LF); None where it cannot be written (nesting too deep)."""
    nodes, stack = [], [doc.documentElement]
    while stack:  # every node (a stack: no recursion on a deep tree)
        nodes.append(stack.pop())
        stack.extend(nodes[-1].childNodes)
    attrs = [a for n in nodes if n.attributes for a in n.attributes.values()]
    texts = [n for n in nodes if n.nodeType == n.TEXT_NODE]
    used = set().union(*(a.value for a in attrs), *(n.data for n in nodes if isinstance(n, minidom.CharacterData)))
    refs = {"\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;"}
    marks = dict(zip(refs, (chr(c) for c in range(0xE000, 0xF900) if chr(c) not in used)))  # (private use)
    if len(marks) == len(refs):  # (else, all but impossible, written raw)
        for attr in attrs:
            attr.value = "".join(marks.get(c, c) for c in attr.value)
        for node in texts:
            node.data = node.data.replace("\r", marks["\r"])
    try:
        text = doc.documentElement.toxml()
    except RecursionError:
        return None
    for char, mark in marks.items():
        text = text.replace(mark, refs[char])
    return (_BEGIN + text + _END).encode("utf-8")


def kept_xmp(packet: bytes | str | None, iim: dict | None = None, png_text: dict | None = None) -> bytes | None:
    """The XMP packet a restoration keeps (UTF-8 bytes with the xpacket wrapper, for Pillow's `xmp=`): `packet`
    (an image file's XMP) less DROPPED_NAMESPACES and DROPPED_PROPERTIES (and BULKY_PROPERTIES where it would not
    fit in a JPEG otherwise), plus the properties of its IPTC-IIM block `iim` (Pillow's
    `IptcImagePlugin.getiptcinfo`; IIM_TO_XMP) and of a PNG's text chunks `png_text` ({keyword: text};
    PNG_TEXT_TO_XMP) that the XMP lacks; None where nothing is left. A packet that is
    not well-formed RDF, holds a DTD or is larger than MAX_READ_BYTES is not read."""
    out = None
    for dropped in (frozenset(), BULKY_PROPERTIES):
        doc, rdf = _rdf(packet)
        present = _filtered(rdf, dropped)
        legacy = {**_png_text_properties(png_text or {}), **_iim_properties(iim or {})}
        added = {k: v for k, v in legacy.items() if k not in present}
        if added:
            rdf.appendChild(_legacy_description(doc, added))
        if not present and not added:
            return out
        out = _serialised(doc)
        if out is None or len(out) <= JPEG_XMP_BYTES - 1024:  # (room for `sized`'s numbers and `labelled`'s label)
            return out
    return out


@functools.lru_cache(maxsize=64)  # (one label per sample or bench image otherwise built and serialised again)
def labelled(packet: bytes | None, source_type: str, made_with: tuple[tuple[str, str], ...] = ()) -> bytes:
    """`packet` (`kept_xmp`'s, or None for a new one) with the label of what made the image: the IPTC
    Iptc4xmpExt:DigitalSourceType `SOURCE_TYPES + source_type` (GENERATED, EDITED_BY_AI or ENHANCED; IPTC Photo
    Metadata Standard 2024.1, the property photo apps and C2PA readers show as "AI-generated" / "Edited with AI")
    and xmp:CreatorTool "ncvsd <version>", in place of any it held; `made_with` ((name, value), ...; names are
    letters) as ncvsd:<name> properties of NCVSD_NS (task, method, NFE, seed, sample, model file)."""
    from ncvsd_cli import __version__

    doc, rdf = _rdf(packet)
    label = {(_IPTC_EXT, "DigitalSourceType"): ("Iptc4xmpExt:DigitalSourceType", "", [SOURCE_TYPES + source_type]),
             (_XMP, "CreatorTool"): ("xmp:CreatorTool", "", [f"ncvsd {__version__}"]),
             **{(NCVSD_NS, name): (f"ncvsd:{name}", "", [_NOT_XML.sub("\ufffd", str(value))])
                for name, value in made_with}}
    _filtered(rdf, frozenset(label))
    rdf.appendChild(_legacy_description(doc, label))
    return _serialised(doc) or labelled(None, source_type, made_with)


def made_with(packet: bytes | str | None) -> dict[str, str]:
    """The ncvsd:<name> settings `labelled` wrote into `packet` ({} where none or unreadable)."""
    doc = _parsed(packet)
    if doc is None:
        return {}
    found = {a.localName: a.value for d in doc.getElementsByTagNameNS(RDF, "Description")
             for a in d.attributes.values() if a.namespaceURI == NCVSD_NS}  # (another writer's shorthand form)
    for n in doc.getElementsByTagNameNS(NCVSD_NS, "*"):  # text values; a structured one (a list) is not ours
        found[n.localName] = "".join(c.data for c in n.childNodes if c.nodeType == c.TEXT_NODE).strip()
    return found


def label_only(packet: bytes) -> bytes | None:
    """The label of `packet` (`labelled`'s, its settings included) alone, for a file that cannot hold all of it (a
    JPEG's XMP segment, JPEG_XMP_BYTES: the picture's own properties are dropped, not the label); None where it
    has no label."""
    doc = _parsed(packet)
    types = [] if doc is None else doc.getElementsByTagNameNS(_IPTC_EXT, "DigitalSourceType")
    text = types[0].firstChild.data if types and types[0].firstChild is not None else ""
    settings = tuple(made_with(packet).items())
    return labelled(None, text[len(SOURCE_TYPES):], settings) if text.startswith(SOURCE_TYPES) else None


def _rdf(packet: bytes | str | None) -> tuple[minidom.Document, minidom.Element]:
    """The parsed packet and its rdf:RDF element; an empty packet where it has none or is not read (`_parsed`)."""
    doc = _parsed(packet)
    rdf = [] if doc is None else doc.getElementsByTagNameNS(RDF, "RDF")
    if not rdf:
        doc = minidom.parseString(f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{RDF}"/></x:xmpmeta>')
        rdf = doc.getElementsByTagNameNS(RDF, "RDF")
    return doc, rdf[0]


def _filtered(rdf: minidom.Element, dropped: frozenset) -> set[tuple[str | None, str | None]]:
    """`_filter_description` on each node of `rdf`, the nodes left empty removed; the properties left."""
    present = set()
    for node in [n for n in rdf.childNodes if n.nodeType == n.ELEMENT_NODE]:
        kept = _filter_description(node, dropped)
        if not kept:
            rdf.removeChild(node)
        present |= kept
    return present


def sized(packet: bytes, width: int, height: int) -> bytes:
    """`packet` (`kept_xmp`'s) with every region list's mwg-rs:AppliedToDimensions (the image size its normalised
    regions, e.g. named faces, were drawn on) set to the written image's `width` x `height` px (a restoration may
    upscale it); unchanged where it has none."""
    if b"AppliedToDimensions" not in packet or (doc := _parsed(packet)) is None:
        return packet
    for dims in doc.getElementsByTagNameNS(_MWG_RS, "AppliedToDimensions"):
        holders = [dims, *(n for n in dims.childNodes if n.nodeType == n.ELEMENT_NODE
                           and (n.namespaceURI, n.localName) == (RDF, "Description"))]
        for name, value in (("w", width), ("h", height)):
            for holder in holders:
                if holder.hasAttributeNS(_ST_DIM, name):
                    holder.setAttributeNS(_ST_DIM, holder.getAttributeNodeNS(_ST_DIM, name).name, str(value))
                for child in holder.childNodes:
                    if child.nodeType == child.ELEMENT_NODE and (child.namespaceURI, child.localName) == (_ST_DIM, name):
                        for text in list(child.childNodes):
                            child.removeChild(text)
                        child.appendChild(doc.createTextNode(str(value)))
    return _serialised(doc) or packet
