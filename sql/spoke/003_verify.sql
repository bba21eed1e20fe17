-- 003_verify: what `hubctl verify` compares that the ledger lacked.
--
-- The MD5 of each object's data set without its File Meta Information
-- (common/dsmd5.h): the hub records the same (instance.dataset_md5), and
-- unlike the file MD5 it does not depend on who sent the object. '' =
-- not recorded (objects received before this migration): not compared.
ALTER TABLE ledger_instance ADD COLUMN dataset_md5 text NOT NULL DEFAULT '';
