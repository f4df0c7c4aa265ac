using AgentWorker.Core.Agents.BuiltIn;

namespace AgentWorker.Core.Tests.Agents;

public sealed class DependencyAuditorTests : IDisposable
{
    private const string Sha = "3f1c2e4b5a6d7c8e9f0a1b2c3d4e5f6a7b8c9d0e";

    private readonly TempRepository repository = new();

    public void Dispose() => repository.Dispose();

    [Fact]
    public void Run_PlantedProblems_ReportsEachWithRuleLineAndSeverity()
    {
        repository
            .Write("web/package.json", $$"""
                {
                  "name": "web",
                  "dependencies": {
                    "react": "^18.2.0",
                    "left-pad": "*",
                    "lodash": "latest",
                    "express": ">=4.0.0",
                    "mylib": "github:acme/mylib#main",
                    "other": "git+https://github.com/acme/other.git",
                    "pinned": "git+https://github.com/acme/pinned.git#{{Sha}}",
                    "local": "file:../local",
                    "bounded": ">=1.0.0 <2.0.0",
                    "aliased": "npm:real@^1.0.0"
                  },
                  "devDependencies": {
                    "jest": "v29.7.0",
                    "typescript": "next"
                  }
                }
                """)
            .Write("services/package-lock.json", "{}")
            .Write("services/api/package.json", """{ "dependencies": { "express": "^4.18.2" } }""")
            .Write("requirements.txt", $"""
                # core
                requests==2.31.0
                flask>=2.0
                django
                numpy==1.*
                -r requirements-dev.txt
                -e git+https://github.com/acme/tool.git@main#egg=tool
                lib @ git+https://github.com/acme/lib.git@{Sha}
                pinned==1.0 \
                    --hash=sha256:0123456789abcdef
                """)
            .Write("src/App/App.csproj", """
                <Project Sdk="Microsoft.NET.Sdk">
                  <ItemGroup>
                    <PackageReference Include="Serilog" Version="3.*" />
                    <PackageReference Include="Polly" Version="8.4.1" />
                    <PackageReference Include="Dapper" Version="[2.0,)" />
                    <PackageReference Include="Humanizer">
                      <Version>*</Version>
                    </PackageReference>
                  </ItemGroup>
                </Project>
                """)
            .Write("Cargo.toml", """
                [package]
                name = "demo"
                version = "0.1.0"

                [dependencies]
                serde = "1.0"
                rand = "*"
                tokio = { version = "1", features = ["full"] }
                mycrate = { git = "https://github.com/acme/mycrate", branch = "dev" }
                pinned = { git = "https://github.com/acme/pinned", rev = "abc1234" }

                [dependencies.tagged]
                git = "https://github.com/acme/tagged"
                tag = "v1.0.0"

                [dev-dependencies.floaty]
                git = "https://github.com/acme/floaty"
                """)
            .Write("Dockerfile", """
                FROM node:20-alpine AS build
                RUN curl -fsSL https://example.com/install.sh | sh
                FROM build AS test
                FROM ubuntu
                FROM python:latest
                FROM registry.local:5000/app
                FROM alpine@sha256:0123456789abcdef
                FROM scratch
                ARG BASE=debian
                FROM ${BASE}
                RUN wget -qO- https://example.com/setup \
                    | sudo bash
                """)
            .Write("docker-compose.yml", """
                services:
                  db:
                    image: postgres
                  cache:
                    image: "redis:7.2"
                """)
            .Write(".github/workflows/ci.yml", $"""
                on: push
                jobs:
                  build:
                    runs-on: ubuntu-latest
                    steps:
                      - uses: actions/checkout@v4
                      - uses: acme/deploy-action@main
                      - uses: acme/other@{Sha}
                      - uses: ./.github/actions/local
                      - run: curl -sSL https://get.example.com | bash
                """)
            .Write("scripts/install.sh", "#!/usr/bin/env bash\nbash <(curl -s https://example.com/i)\n")
            .Write("README.md", "Install: curl https://example.com/i | sh\n");

        var transcript = AgentTranscript.Run(new DependencyAuditor(), repository);

        Assert.Equal(
        [
            ("unpinned-git-dependency", ".github/workflows/ci.yml", 7, "medium"),
            ("pipe-to-shell", ".github/workflows/ci.yml", 10, "high"),
            ("floating-version", "Cargo.toml", 7, "medium"),
            ("unpinned-git-dependency", "Cargo.toml", 9, "medium"),
            ("unpinned-git-dependency", "Cargo.toml", 16, "medium"),
            ("pipe-to-shell", "Dockerfile", 2, "high"),
            ("unpinned-base-image", "Dockerfile", 4, "medium"),
            ("unpinned-base-image", "Dockerfile", 5, "medium"),
            ("unpinned-base-image", "Dockerfile", 6, "medium"),
            ("pipe-to-shell", "Dockerfile", 11, "high"),
            ("unpinned-base-image", "docker-compose.yml", 3, "medium"),
            ("unpinned-dependency", "requirements.txt", 3, "low"),
            ("unpinned-dependency", "requirements.txt", 4, "low"),
            ("unpinned-dependency", "requirements.txt", 5, "low"),
            ("unpinned-git-dependency", "requirements.txt", 7, "medium"),
            ("pipe-to-shell", "scripts/install.sh", 2, "high"),
            ("floating-version", "src/App/App.csproj", 3, "medium"),
            ("floating-version", "src/App/App.csproj", 5, "medium"),
            ("floating-version", "src/App/App.csproj", 6, "medium"),
            ("missing-lockfile", "web/package.json", null, "medium"),
            ("floating-version", "web/package.json", 5, "medium"),
            ("floating-version", "web/package.json", 6, "medium"),
            ("floating-version", "web/package.json", 7, "medium"),
            ("unpinned-git-dependency", "web/package.json", 8, "medium"),
            ("unpinned-git-dependency", "web/package.json", 9, "medium"),
            ("floating-version", "web/package.json", 17, "medium"),
        ], transcript.Keys);
        Assert.Equal("dependency_auditor: 26 findings (4 high, 19 medium, 3 low) in 11 files", transcript.Summary);
    }

    [Fact]
    public void Run_GitDependencyOnBranch_NamesTheRefButNotTheUrl()
    {
        repository.Write("requirements.txt", "-e git+https://deploy:" + "s3cretT0ken" + "@github.com/acme/tool.git@develop#egg=tool\n");

        var transcript = AgentTranscript.Run(new DependencyAuditor(), repository);

        var finding = Assert.Single(transcript.Findings);
        Assert.Equal("\"tool\" is fetched from git at branch 'develop', so its content can change without a manifest change; pin a commit", finding.Message);
        Assert.DoesNotContain("s3cretT0ken", transcript.Decoded, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_PinnedCounterparts_ReportsNothing()
    {
        repository
            .Write("package.json", $$"""
                {
                  "dependencies": { "react": "^18.2.0", "lodash": "~4.17.21", "lib": "github:acme/lib#{{Sha}}" },
                  "devDependencies": { "typescript": "5.4.5" }
                }
                """)
            .Write("yarn.lock", "# yarn lockfile v1\n")
            .Write("requirements.txt", "requests==2.31.0\nflask[async]==3.0.0 ; python_version >= \"3.9\"\n")
            .Write("App.csproj", """<Project><ItemGroup><PackageReference Include="Polly" Version="8.4.1" /></ItemGroup></Project>""")
            .Write("Cargo.toml", "[dependencies]\nserde = \"1.0\"\nlocal = { path = \"../local\" }\n")
            .Write("go.mod", "module example.com/demo\n\ngo 1.22\n\nrequire (\n\tgithub.com/pkg/errors v0.9.1\n)\n")
            .Write("Dockerfile", "FROM node:20.11-alpine AS build\nRUN curl -fsSLo install.sh https://example.com/i && sha256sum -c sums && sh install.sh\nFROM build\n")
            .Write(".github/workflows/ci.yml", "jobs:\n  b:\n    steps:\n      - uses: actions/checkout@v4.1.1\n");

        var transcript = AgentTranscript.Run(new DependencyAuditor(), repository);

        Assert.Empty(transcript.Findings);
        Assert.Equal("dependency_auditor: 0 findings in 8 files", transcript.Summary);
    }

    [Fact]
    public void Run_PackageJsonWithoutDependencies_NeedsNoLockFile()
    {
        repository.Write("package.json", """{ "name": "tool", "scripts": { "test": "node test.js" } }""");

        Assert.Empty(AgentTranscript.Run(new DependencyAuditor(), repository).Findings);
    }

    [Fact]
    public void Run_MalformedManifests_AreLoggedAndSkipped()
    {
        repository.Write("package.json", "{ not json").Write("App.csproj", "<Project><ItemGroup>");

        var transcript = AgentTranscript.Run(new DependencyAuditor(), repository);

        Assert.Empty(transcript.Findings);
        Assert.Contains("skipped package.json: not a JSON object", transcript.Logs);
        Assert.Contains("skipped App.csproj: not well-formed XML", transcript.Logs);
    }
}
