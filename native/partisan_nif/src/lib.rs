rustler::init!("partisan_nif");
