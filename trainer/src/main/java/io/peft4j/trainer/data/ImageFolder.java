package io.peft4j.trainer.data;

import io.peft4j.core.Peft4jException;
import io.peft4j.core.Peft4jException.ErrorCode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A folder of class folders, {@code DIR/<class>/*.{png,jpg,jpeg,bmp}}: classes are the sorted
 * folder names, files are sorted by name within a class. Hidden entries (names starting with a dot)
 * and files with other extensions are ignored. Listing reads every file's header, so a file that
 * is not an image or is too large is reported at once, by name.
 */
final class ImageFolder implements ImageDataset.Source {

    static final Set<String> EXTENSIONS = Set.of("png", "jpg", "jpeg", "bmp");

    private final Path dir;
    private final List<String> classes;
    private final List<Path> files;
    private final int[] labels;
    private final long decodedBytes;

    private ImageFolder(Path dir, List<String> classes, List<Path> files, int[] labels, long decodedBytes) {
        this.dir = dir;
        this.classes = classes;
        this.files = files;
        this.labels = labels;
        this.decodedBytes = decodedBytes;
    }

    /** Lists {@code dir} and reads every image's header on {@code workers} threads. */
    static ImageFolder scan(Path dir, int workers) {
        if (!Files.exists(dir)) {
            throw new Peft4jException(ErrorCode.IO, "image folder not found: " + dir);
        }
        if (!Files.isDirectory(dir)) {
            throw Peft4jException.invalid(dir + " is not a folder of class folders (DIR/<class>/*.png)");
        }
        List<Path> classDirs = list(dir).stream().filter(Files::isDirectory).toList();
        if (classDirs.isEmpty()) {
            boolean looseImages = list(dir).stream().anyMatch(ImageFolder::isImage);
            throw Peft4jException.invalid(dir + (looseImages
                    ? " holds images but no class folders: put each class's images in DIR/<class>/"
                    : " is empty: expected one folder per class, DIR/<class>/*.png|jpg|jpeg|bmp"));
        }
        List<String> classes = new ArrayList<>();
        List<Path> files = new ArrayList<>();
        List<Integer> labels = new ArrayList<>();
        for (Path c : classDirs) {
            List<Path> images = list(c).stream().filter(ImageFolder::isImage).toList();
            if (images.isEmpty()) {
                throw Peft4jException.invalid("class folder " + c + " has no images (" + String.join(", ", extensionsSorted())
                        + ")");
            }
            for (Path f : images) {
                files.add(f);
                labels.add(classes.size());
            }
            classes.add(c.getFileName().toString());
        }
        ImageFiles.Header[] headers = new ImageFiles.Header[files.size()];
        Parallel.forEach(files.size(), workers, i -> headers[i] = ImageFiles.probe(files.get(i)));
        long bytes = 0;
        for (ImageFiles.Header h : headers) {
            bytes += h.bytes();
        }
        return new ImageFolder(dir, List.copyOf(classes), List.copyOf(files),
                labels.stream().mapToInt(Integer::intValue).toArray(), bytes);
    }

    private static List<String> extensionsSorted() {
        return EXTENSIONS.stream().sorted().map(e -> "." + e).toList();
    }

    /** Non-hidden entries of {@code dir}, sorted by name. */
    private static List<Path> list(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> !p.getFileName().toString().startsWith("."))
                    .sorted(Comparator.comparing(p -> p.getFileName().toString()))
                    .toList();
        } catch (IOException e) {
            throw new Peft4jException(ErrorCode.IO, "cannot list " + dir + ": " + e.getMessage(), e);
        }
    }

    static boolean isImage(Path p) {
        String name = p.getFileName().toString();
        int dot = name.lastIndexOf('.');
        return dot > 0 && EXTENSIONS.contains(name.substring(dot + 1).toLowerCase(Locale.ROOT)) && Files.isRegularFile(p);
    }

    Path dir() {
        return dir;
    }

    List<String> classes() {
        return classes;
    }

    int[] labels() {
        return labels.clone();
    }

    Path file(int i) {
        return files.get(i);
    }

    @Override
    public int size() {
        return files.size();
    }

    @Override
    public Pixels load(int i) {
        return ImageFiles.decode(files.get(i));
    }

    @Override
    public String name(int i) {
        return files.get(i).toString();
    }

    @Override
    public boolean inMemory() {
        return false;
    }

    @Override
    public long decodedBytes() {
        return decodedBytes;
    }
}
