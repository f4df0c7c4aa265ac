using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AgentWorker.Testing;

/// <summary>
/// A certificate authority made in-process for one test: clients trust it through its PEM file (curl <c>--cacert</c>,
/// <c>GIT_SSL_CAINFO</c>, Python's <c>cafile</c>), servers get leaves it signs. Nothing is installed on the machine.
/// </summary>
public sealed class TestCertificateAuthority : IDisposable
{
    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");
    private readonly X509Certificate2 _ca;

    public TestCertificateAuthority()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=agent-worker test CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        _ca = request.CreateSelfSigned(now.AddDays(-1), now.AddDays(7));
        Pem = _ca.ExportCertificatePem() + "\n";
    }

    /// <summary>The CA certificate as PEM, what clients are told to trust.</summary>
    public string Pem { get; }

    /// <summary>Writes <see cref="Pem"/> to <paramref name="path"/>, readable by anyone (the sandbox user too); returns the path.</summary>
    public string WritePem(string path)
    {
        File.WriteAllText(path, Pem);
        File.SetUnixFileMode(path, (UnixFileMode)0b110_100_100);
        return path;
    }

    /// <summary>
    /// A server certificate with its key, for <paramref name="names"/> and <paramref name="addresses"/>, with the extensions
    /// strict verifiers (OpenSSL 3, Python's VERIFY_X509_STRICT) insist on.
    /// </summary>
    public X509Certificate2 Issue(IEnumerable<string> names, IEnumerable<IPAddress> addresses)
    {
        var dnsNames = names.ToList();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={dnsNames.FirstOrDefault() ?? "test server"}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ServerAuthentication], false));
        var subjectAlternativeNames = new SubjectAlternativeNameBuilder();
        foreach (var name in dnsNames)
            subjectAlternativeNames.AddDnsName(name);
        foreach (var address in addresses)
            subjectAlternativeNames.AddIpAddress(address);
        request.CertificateExtensions.Add(subjectAlternativeNames.Build());
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_ca, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        // Within the CA's own validity: a leaf issued later must not outlive its issuer.
        using var signed = request.Create(_ca, _ca.NotBefore, _ca.NotAfter, serial);
        using var withKey = signed.CopyWithPrivateKey(key);
        // Through PKCS#12, so the key is one SslStream can use rather than an ephemeral handle.
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>Whether <paramref name="certificate"/> chains to this CA (for the test's own HTTPS clients).</summary>
    public bool Trusts(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    public void Dispose() => _ca.Dispose();
}
