"""MLCommons Croissant 1.0 metadata (with the Responsible-AI fields) for a Causal3DIdent dataset.

Croissant cannot read records inside HDF5, so the HDF5 files are described as files and the records
come from the PNG + table export (``c3di export FILE.h5 DIR --format csv`` or ``parquet``), whose layout
this assumes: ``DIR/images/<split>/<index:06d>.png`` and ``DIR/<split>.csv`` (or ``.parquet``) with the
columns ``index, file, class, class_name`` and the ten latents, where ``file`` is the PNG's path relative
to DIR (``images/<split>/...``). Put croissant.json at the root of DIR to load the records.
"""

from __future__ import annotations

from typing import Any

from . import card_text
from .dataset_facts import DatasetFacts
from .latents import CLASS_NAMES, LATENT_NAMES, SCENE_UNITS

CONFORMS_TO = ["http://mlcommons.org/croissant/1.0", "http://mlcommons.org/croissant/RAI/1.0"]
CONTEXT: dict[str, Any] = {
    "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/", "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet", "format": "cr:format",
    "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key",
    "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path", "recordSet": "cr:recordSet",
    "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace",
    "samplingRate": "cr:samplingRate", "sc": "https://schema.org/", "separator": "cr:separator",
    "source": "cr:source", "subField": "cr:subField", "transform": "cr:transform",
}
"""The standard Croissant 1.0 JSON-LD context (as mlcroissant writes it)."""
TABLE_ENCODINGS = {"csv": "text/csv", "parquet": "application/x-parquet"}
"""Encoding format of each export table format (``c3di export --format``)."""


def _field(record_set: str, name: str, data_type: str, description: str, source: dict[str, Any],
           **extra: Any) -> dict[str, Any]:
    return {"@type": "cr:Field", "@id": f"{record_set}/{name}", "name": name, "description": description,
            "dataType": data_type, "source": source, **extra}


def _column(file_set: str, column: str) -> dict[str, Any]:
    return {"fileSet": {"@id": file_set}, "extract": {"column": column}}


def _distribution(facts: DatasetFacts, table: str) -> list[dict[str, Any]]:
    """The HDF5 files (objects with checksums when they exist, else a set), the tables and the PNGs."""
    names = [s.name for s in facts.splits]
    files: list[dict[str, Any]] = []
    for split in facts.splits:
        if split.file is not None:
            files.append({"@type": "cr:FileObject", "@id": f"hdf5-{split.name}", "name": split.file.name,
                          "description": f"The {split.name} split as one HDF5 file (schema v1): latents, classes, "
                                         f"images and latent-transformation pairs; see docs/hdf5_schema.md.",
                          "contentUrl": split.file.name, "contentSize": f"{split.file.size} B",
                          "encodingFormat": "application/x-hdf5", "sha256": split.file.sha256})
    if not files:
        files.append({"@type": "cr:FileSet", "@id": "hdf5-files", "name": "hdf5-files",
                      "description": "One HDF5 file (schema v1) per split: latents, classes, images and "
                                     "latent-transformation pairs; checksums depend on the rendering and are "
                                     "given in the card `c3di card` writes for each rendered file.",
                      "encodingFormat": "application/x-hdf5", "includes": [f"{n}.h5" for n in names]})
    files.append({"@type": "cr:FileSet", "@id": f"{table}-files", "name": f"{table}-files",
                  "description": "The export's per-split tables: one row per image with its class and raw latents.",
                  "encodingFormat": TABLE_ENCODINGS[table], "includes": [f"{n}.{table}" for n in names]})
    if facts.has_images:
        files.append({"@type": "cr:FileSet", "@id": "png-files", "name": "png-files",
                      "description": f"The export's images, {facts.resolution} x {facts.resolution} RGB PNG.",
                      "encodingFormat": "image/png", "includes": [f"images/{n}/*.png" for n in names]})
    return files


def _samples(facts: DatasetFacts, table: str) -> dict[str, Any]:
    """The record set of samples: table rows, joined to their PNG on the image path when images exist."""
    rs, rows = "samples", f"{table}-files"
    fields: list[dict[str, Any]] = []
    if facts.has_images:
        fields += [
            _field(rs, "file", "sc:Text", "Path of the image relative to the export's root.",
                   {"fileSet": {"@id": "png-files"}, "extract": {"fileProperty": "fullpath"},
                    "transform": {"regex": "^(.*)$"}},
                   references=_column(rows, "file")),
            _field(rs, "image", "sc:ImageObject", "The rendered image.",
                   {"fileSet": {"@id": "png-files"}, "extract": {"fileProperty": "content"}}),
            _field(rs, "split", "sc:Text", "The split the sample belongs to.",
                   {"fileSet": {"@id": "png-files"}, "extract": {"fileProperty": "fullpath"},
                    "transform": {"regex": "^images/([^/]+)/"}}),
        ]
    else:
        fields += [
            _field(rs, "file", "sc:Text", "Path the image has once rendered and exported.",
                   _column(rows, "file")),
            _field(rs, "split", "sc:Text", "The split the sample belongs to.",
                   {"fileSet": {"@id": rows}, "extract": {"fileProperty": "filename"},
                    "transform": {"regex": f"^(.*)\\.{table}$"}}),
        ]
    fields += [
        _field(rs, "index", "sc:Integer", "Global sample index (the seed and this index determine the latents).",
               _column(rows, "index")),
        _field(rs, "class", "sc:Integer", "Object class 0-6 (see record set class_names).",
               _column(rows, "class")),
        _field(rs, "class_name", "sc:Text", "Object class name.", _column(rows, "class_name")),
    ]
    fields += [_field(rs, name, "sc:Float", f"Raw latent in [-1, 1]; scene units: {SCENE_UNITS[name]}.",
                      _column(rows, name)) for name in LATENT_NAMES]
    return {"@type": "cr:RecordSet", "@id": rs, "name": rs, "key": {"@id": f"{rs}/file"},
            "description": "One record per image: class and the ten raw latents that generated it.", "field": fields}


def _class_names() -> dict[str, Any]:
    rs = "class_names"
    return {"@type": "cr:RecordSet", "@id": rs, "name": rs, "key": {"@id": f"{rs}/class"},
            "description": "The seven object classes (meshes), by label.",
            "field": [{"@type": "cr:Field", "@id": f"{rs}/class", "name": "class", "dataType": "sc:Integer"},
                      {"@type": "cr:Field", "@id": f"{rs}/name", "name": "name", "dataType": "sc:Text"}],
            "data": [{f"{rs}/class": i, f"{rs}/name": n} for i, n in enumerate(CLASS_NAMES)]}


def _responsible_ai(facts: DatasetFacts) -> dict[str, Any]:
    """The Croissant RAI fields, from the same text the data card uses."""
    rai = card_text.responsible_ai(facts)
    return {
        "rai:dataCollection": rai["collection"],
        "rai:dataCollectionType": ["Simulated / synthetic data (rendered from a structural causal model)"],
        "rai:dataCollectionMissingData": rai["missing"],
        "rai:dataCollectionRawData": rai["raw_data"],
        "rai:dataPreprocessingProtocol": [rai["preprocessing"]],
        "rai:dataAnnotationProtocol": [rai["annotation"]],
        "rai:dataAnnotationPlatform": ["causal3dident (this project's generator); no human annotators"],
        "rai:annotationsPerItem": "One: the exact generating latents and class, written by the generator.",
        "rai:annotatorDemographics": ["Not applicable: no human annotators."],
        "rai:machineAnnotationTools": [f"causal3dident {facts.package_version}"],
        "rai:dataUseCases": rai["use_cases"],
        "rai:dataBiases": rai["biases"],
        "rai:dataLimitations": rai["limitations"],
        "rai:dataSocialImpact": rai["social_impact"],
        "rai:personalSensitiveInformation": [rai["personal"]],
        "rai:dataReleaseMaintenancePlan": rai["maintenance"],
    }


def croissant(facts: DatasetFacts, date_published: str, table: str = "csv") -> dict[str, Any]:
    """The Croissant JSON-LD document of a dataset variant (``date_published`` as YYYY-MM-DD), whose records
    come from the export with ``table`` (``"csv"`` or ``"parquet"``) tables."""
    if table not in TABLE_ENCODINGS:
        raise ValueError(f"unknown table format {table!r}; choose {' or '.join(TABLE_ENCODINGS)}")
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": card_text.pretty_name(facts),
        "description": card_text.summary(facts),
        "conformsTo": CONFORMS_TO,
        "citeAs": card_text.citation_bibtex(facts),
        "license": card_text.license_text(),
        "url": card_text.paper_url(facts),
        "version": facts.package_version,
        "datePublished": date_published,
        "creator": {"@type": "sc:Organization", "name": "causal3dident developers"},
        "keywords": card_text.tags(facts),
        "isAccessibleForFree": True,
        **_responsible_ai(facts),
        "distribution": _distribution(facts, table),
        "recordSet": [_class_names(), _samples(facts, table)],
    }
