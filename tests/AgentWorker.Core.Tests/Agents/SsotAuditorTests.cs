using AgentWorker.Core.Agents.BuiltIn;

namespace AgentWorker.Core.Tests.Agents;

public sealed class SsotAuditorTests : IDisposable
{
    private const string ComputeTotal = """
        def compute_total(items, tax_rate):
            subtotal = 0
            for item in items:
                price = item["price"]
                quantity = item["quantity"]
                subtotal += price * quantity
            tax = subtotal * tax_rate
            total = subtotal + tax
            return round(total, 2)
        """;

    private const string DeployBlock = """
        echo "building"
        docker build -t app .
        docker tag app registry/app
        docker push registry/app
        kubectl apply -f k8s/
        kubectl rollout status deploy/app
        echo "deployed"
        notify_slack "done"
        """;

    private const string StringHelpers = """
        def slugify(text):
            return text.lower().replace(" ", "-")

        def title(text):
            return text.title()

        def shout(text):
            return text.upper()
        """;

    private static readonly string TokenA = FakeSecret.Of("Q9", 14);
    private static readonly string TokenB = FakeSecret.Of("R8", 14);

    private readonly TempRepository repository = new();

    public void Dispose() => repository.Dispose();

    [Fact]
    public void Run_PlantedDrift_ReportsEachWithRuleLineAndSeverity()
    {
        PlantDrift();

        var transcript = AgentTranscript.Run(new SsotAuditor(), repository);

        Assert.Equal(
        [
            ("conflicting-version", ".nvmrc", 1, "high"),
            ("conflicting-version", "Directory.Packages.props", 3, "high"),
            ("duplicated-constant", "a/limits.py", 1, "low"),
            ("conflicting-version", "admin/package.json", 3, "high"),
            ("conflicting-version", "crates/a/Cargo.toml", 2, "high"),
            ("conflicting-constant", "native/limits.h", 1, "medium"),
            ("conflicting-version", "requirements-dev.txt", 1, "high"),
            ("duplicate-block", "scripts/deploy.sh", 12, "low"),
            ("duplicate-block", "services/invoices.py", 6, "low"),
            ("duplicated-constant", "src/config.py", 2, "low"),
            ("duplicated-constant", "src/config.py", 3, "low"),
            ("conflicting-constant", "src/config.py", 4, "medium"),
            ("duplicate-file", "src/utils/strings.py", null, "medium"),
            ("conflicting-version", "svc-a/go.mod", 3, "high"),
        ], transcript.Keys);
    }

    [Fact]
    public void Run_PlantedDrift_MessagesNameBothPlaces()
    {
        PlantDrift();

        var findings = AgentTranscript.Run(new SsotAuditor(), repository).Findings;

        string Message(string rule, string file, int? line = null) =>
            Assert.Single(findings, f => f.Rule == rule && f.File == file && (line is null || f.Line == line)).Message;
        Assert.Equal("identical to lib/strings_copy.py; keep one copy and reference or generate the other", Message("duplicate-file", "src/utils/strings.py"));
        Assert.Equal("lines 6–14 repeat lines 4–12 in services/billing.py (9 non-blank lines); extract the shared part into one place",
            Message("duplicate-block", "services/invoices.py"));
        Assert.Equal("lines 12–19 repeat lines 3–10 earlier in this file (8 non-blank lines); extract the shared part into one place",
            Message("duplicate-block", "scripts/deploy.sh"));
        Assert.Equal("npm package lodash is pinned to different versions: 4.17.15 (admin/package.json:3), ^4.17.21 (web/package.json:3); "
            + "declare the version once (central package management, workspace catalog or constraints file)", Message("conflicting-version", "admin/package.json"));
        Assert.Equal("node version declarations disagree: 20 (.nvmrc:1), FROM node 18-alpine (Dockerfile:1), engines.node >=18 (web/package.json:8); "
            + "keep one source of truth and derive the others from it", Message("conflicting-version", ".nvmrc"));
        Assert.Equal("MAX_RETRIES has 2 different values: 0x3 at native/limits.h:1, src/config.py:1; 5 at web/src/config.ts:1; decide which is right and define it once",
            Message("conflicting-constant", "native/limits.h"));
        Assert.Equal("TIMEOUT_SECONDS = 30 is defined in 3 places: src/config.py:2, svc/Settings.cs:3, web/src/config.ts:2; define it once and import it",
            Message("duplicated-constant", "src/config.py", line: 2));
        Assert.Equal("API_BASE_URL = \"https://api.example.com\" is defined in 2 places: src/config.py:3, web/src/config.ts:3; define it once and import it",
            Message("duplicated-constant", "src/config.py", line: 3));
    }

    [Fact]
    public void Run_ConstantThatLooksLikeACredential_IsRedactedInMessages()
    {
        PlantDrift();

        var transcript = AgentTranscript.Run(new SsotAuditor(), repository);

        var finding = Assert.Single(transcript.Findings, f => f.Rule == "conflicting-constant" && f.File == "src/config.py");
        Assert.StartsWith("SERVICE_TOKEN has 2 different values: ", finding.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(TokenA, transcript.Decoded, StringComparison.Ordinal);
        Assert.DoesNotContain(TokenB, transcript.Decoded, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_CleanCounterparts_ReportsNothing()
    {
        const string header = """
            // Copyright (c) Example Corp. All rights reserved.
            // Licensed under the MIT license. See LICENSE in the project root.
            using System;
            using System.Collections.Generic;
            using System.IO;
            using System.Linq;
            using System.Text;
            using System.Threading;
            using System.Threading.Tasks;

            """;
        repository
            .Write("src/A.cs", header + "namespace Demo;\n\ninternal sealed class A\n{\n    public int Value => 1;\n}\n")
            .Write("src/B.cs", header + "namespace Demo;\n\ninternal sealed class B\n{\n    public string Name => \"b\";\n}\n")
            .Write("a/__init__.py", "\n")
            .Write("b/__init__.py", "\n")
            .Write("web/package.json", """{ "dependencies": { "react": "18.2.0" }, "peerDependencies": { "react": ">=17" }, "engines": { "node": ">=18 <21" } }""")
            .Write("admin/package.json", """{ "dependencies": { "react": "18.2.0" } }""")
            .Write("requirements.txt", "Flask==3.0.0\nrequests>=2\n")
            .Write("requirements-dev.txt", "flask==3.0.0\nrequests==2.31.0\n")
            .Write(".nvmrc", "20.11.1\n")
            .Write("Dockerfile", "FROM node:20-alpine\n")
            .Write(".python-version", "3.11.4\n")
            .Write("runtime.txt", "python-3.11.6\n")
            .Write("pyproject.toml", "[project]\nrequires-python = \">=3.9\"\n")
            .Write("one/config.py", "MAX = 5\nLOCAL_ONLY = 1\n\nclass State(enum.Enum):\n    DONE = \"done\"\n")
            .Write("two/config.py", "MAX = 6\n\nclass Phase(enum.Enum):\n    DONE = 3\n");

        var transcript = AgentTranscript.Run(new SsotAuditor(), repository);

        Assert.Empty(transcript.Findings);
        Assert.Equal("ssot_auditor: 0 findings in 15 files", transcript.Summary);
    }

    private void PlantDrift() => repository
        .Write("lib/strings_copy.py", StringHelpers)
        .Write("src/utils/strings.py", StringHelpers)
        .Write("services/billing.py", $"import os\nimport sys\n\n{ComputeTotal}\n\ndef billing_only():\n    return \"billing\"\n")
        .Write("services/invoices.py", $"# Invoices\n\ndef render_invoice(invoice):\n    return f\"Invoice {{invoice.id}}\"\n\n{ComputeTotal}\n\ndef invoice_only():\n    return \"invoice\"\n")
        .Write("scripts/deploy.sh", $"#!/bin/bash\nset -euo pipefail\n{DeployBlock}\necho \"second environment\"\n{DeployBlock}\n")
        .Write("web/package.json", """
            {
              "dependencies": {
                "lodash": "^4.17.21",
                "react": "18.2.0"
              },
              "peerDependencies": { "react": ">=17" },
              "engines": {
                "node": ">=18"
              }
            }
            """)
        .Write("admin/package.json", """
            {
              "dependencies": {
                "lodash": "4.17.15",
                "react": "18.2.0"
              }
            }
            """)
        .Write("requirements.txt", "Flask==3.0.0\nrequests==2.31.0\nclick>=8\n")
        .Write("requirements-dev.txt", "requests==2.28.0\nflask==3.0.0\nclick>=7\n")
        .Write("Directory.Packages.props", """
            <Project>
              <ItemGroup>
                <PackageVersion Include="Serilog" Version="3.1.1" />
              </ItemGroup>
            </Project>
            """)
        .Write("src/Legacy/Legacy.csproj", """
            <Project Sdk="Microsoft.NET.Sdk">
              <ItemGroup>
                <PackageReference Include="serilog" Version="2.12.0" />
              </ItemGroup>
            </Project>
            """)
        .Write("svc-a/go.mod", "module example.com/a\n\nrequire github.com/pkg/errors v0.9.1\n")
        .Write("svc-b/go.mod", "module example.com/b\n\nrequire (\n\tgithub.com/pkg/errors v0.8.0 // indirect\n)\n")
        .Write("crates/a/Cargo.toml", "[dependencies]\nserde = \"1.0.190\"\n")
        .Write("crates/b/Cargo.toml", "[dependencies]\nserde = { version = \"1.0.150\", features = [\"derive\"] }\n")
        .Write(".nvmrc", "20\n")
        .Write("Dockerfile", "FROM node:18-alpine\nCMD [\"node\", \"server.js\"]\n")
        .Write(".python-version", "3.11.4\n")
        .Write("pyproject.toml", "[project]\nrequires-python = \">=3.9\"\n")
        .Write("src/config.py", $"MAX_RETRIES = 3\nTIMEOUT_SECONDS = 30\nAPI_BASE_URL = \"https://api.example.com\"\nSERVICE_TOKEN = \"{TokenA}\"\n")
        .Write("web/src/config.ts", $"export const MAX_RETRIES = 5;\nexport const TIMEOUT_SECONDS: number = 30;\nexport const API_BASE_URL = 'https://api.example.com';\nexport const SERVICE_TOKEN = '{TokenB}';\n")
        .Write("native/limits.h", "#define MAX_RETRIES 0x3\n")
        .Write("a/limits.py", "BATCH_SIZE = 1_000\n")
        .Write("b/limits.ts", "export const BATCH_SIZE = 1000.0;\n")
        .Write("svc/Settings.cs", "internal static class Settings\n{\n    public const int TIMEOUT_SECONDS = 30;\n}\n");
}
