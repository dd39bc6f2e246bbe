// Package keyfile checks the framing of Java keystores — JKS and PKCS#12 —
// before a decoder reads them: the decoders trust the lengths, counts and
// key-derivation iteration counts a file states, so that a corrupt or
// hostile file could make them allocate gigabytes or run for hours.
//
// CheckJKS walks a JKS keystore's framing; CheckPKCS12 walks a PKCS#12
// file's BER and bounds its iteration counts (MaxPKCS12Iterations). The
// balancer's CertStore and TrustStore call them before keystore-go and
// go-pkcs12 decode a file.
package keyfile
