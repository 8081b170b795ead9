-- The currencies of the ingest benchmark: EUR (the pivot) and 169 other ISO 4217 codes, so a
-- snapshot quotes 169 currencies against EUR (170 currencies in all). Names and minor units are
-- placeholders: neither matters for storing rates. Codes already present (e.g. added as historic
-- by the ECB import) are re-enabled.
INSERT INTO currencies (code, name, minor_units, is_iso, enabled, retired_at)
SELECT code, 'Bench ' || code, 2, true, true, NULL
FROM unnest(string_to_array(
  'EUR,AED,AFN,ALL,AMD,ANG,AOA,ARS,AUD,AWG,AZN,BAM,BBD,BDT,BGN,BHD,BIF,BMD,BND,BOB,BRL,BSD,BTN,BWP,'
  'BYN,BZD,CAD,CDF,CHF,CLP,CNY,COP,CRC,CUC,CUP,CVE,CZK,DJF,DKK,DOP,DZD,EGP,ERN,ETB,FJD,FKP,GBP,GEL,'
  'GHS,GIP,GMD,GNF,GTQ,GYD,HKD,HNL,HTG,HUF,IDR,ILS,INR,IQD,IRR,ISK,JMD,JOD,JPY,KES,KGS,KHR,KMF,KPW,'
  'KRW,KWD,KYD,KZT,LAK,LBP,LKR,LRD,LSL,LYD,MAD,MDL,MGA,MKD,MMK,MNT,MOP,MRU,MUR,MVR,MWK,MXN,MYR,MZN,'
  'NAD,NGN,NIO,NOK,NPR,NZD,OMR,PAB,PEN,PGK,PHP,PKR,PLN,PYG,QAR,RON,RSD,RUB,RWF,SAR,SBD,SCR,SDG,SEK,'
  'SGD,SHP,SLE,SOS,SRD,SSP,STN,SVC,SYP,SZL,THB,TJS,TMT,TND,TOP,TRY,TTD,TWD,TZS,UAH,UGX,USD,UYU,UZS,'
  'VES,VND,VUV,WST,XAF,XCD,XOF,XPF,YER,ZAR,ZMW,ZWL,CLF,BOV,COU,MXV,VED,ZWG,SLL,UYI,UYW,CHE,CHW,USN,XDR,XSU', ',')) AS c(code)
ON CONFLICT (code) DO UPDATE SET enabled = true, retired_at = NULL;
