-- The handset a kept (unmatched) receipt names: its deliver_sm source_addr, '' when
-- the SMSC left it empty.  A kept receipt is applied later only to a segment whose
-- message went to that number (an SMSC that restarted reuses its message ids).

ALTER TABLE unmatched_receipts ADD COLUMN destination TEXT NOT NULL DEFAULT '';
