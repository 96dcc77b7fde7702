-- where each host answers (other hosts fetch a running job's logs from it).
ALTER TABLE {s}.hosts ADD COLUMN url text;
