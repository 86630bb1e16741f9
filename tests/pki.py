"""A throwaway PKI made with openssl for TLS tests: a CA, a server certificate for 127.0.0.1, client certificates."""
import os
import subprocess


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(folder):
    """A CA, a server certificate for 127.0.0.1, a client certificate; and a second CA with its own client."""
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", *key, "-days", "2", "-subj", "/CN=roadedge test " + ca, "-keyout", ca + ".key",
                 "-out", ca + ".crt", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    leaves = (("server", "ca", "127.0.0.1", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
              ("client", "ca", "rc-car-1", "clientAuth", ""), ("rogue", "rogue-ca", "rc-car-1", "clientAuth", ""))
    for serial, (name, ca, cn, usage, extra) in enumerate(leaves, 1):
        with open(os.path.join(folder, name + ".ext"), "w") as handle:
            handle.write(extra + "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={}\n"
                         "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n".format(usage))
        _openssl("req", "-new", *key, "-subj", "/CN=" + cn, "-keyout", name + ".key", "-out", name + ".csr", cwd=folder)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key", "-set_serial",
                 str(serial), "-days", "2", "-extfile", name + ".ext", "-out", name + ".crt", cwd=folder)
    return {name: os.path.join(folder, name) for name in ("ca", "rogue-ca", "server", "client", "rogue")}
