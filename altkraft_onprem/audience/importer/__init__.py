"""Importing subscribers: files, archives, pasted tables and API batches.

reading: `text` (CSV/TXT/paste: encoding, delimiter, header), `sheets` (.xls/.xlsx),
`archives` (.zip/.tar.gz as streams, with limits), `sources` (what kind of file, yield tables);
`mapping` (columns -> fields); `writer` (validate + batched upserts); `service` (the imports
table, running an import); `jobs`, `views`, `api` (the ways in).
"""
