"""Short encyclopedic paragraphs of plain common knowledge, written for shipit (no copied text): the natural world's
general text, for measuring a real model's forgetting (held-out perplexity) and as replay in continued pretraining."""

from __future__ import annotations

PROSE: list[str] = [
    # ---------------------------------------------------------------- earth and weather
    "The water cycle describes how water moves around the Earth. Heat from the Sun evaporates water from oceans, "
    "lakes and rivers, and plants release water vapour through their leaves. As the vapour rises it cools and "
    "condenses into tiny droplets that form clouds. When the droplets grow heavy enough they fall as rain, snow or "
    "hail. The water then runs into rivers, soaks into the ground or collects in the sea, and the cycle begins again.",
    "Volcanoes are openings in the Earth's crust through which molten rock, ash and gases escape. The molten rock, "
    "called magma while it is underground and lava once it reaches the surface, comes from deep below the crust. "
    "Many volcanoes lie along the edges of tectonic plates, especially around the Pacific Ocean in a region known "
    "as the Ring of Fire. Some erupt explosively, while others release slow rivers of lava.",
    "Earthquakes happen when rocks along a fault in the Earth's crust suddenly slip past one another. The energy "
    "released travels through the ground as seismic waves, which can shake buildings and trigger landslides. "
    "Scientists measure the size of an earthquake with a magnitude scale, where each whole number step means a "
    "much larger release of energy. Most earthquakes are too small to feel, but a few each year cause serious damage.",
    "The Earth has seasons because its axis is tilted by about twenty-three degrees. As the planet travels around "
    "the Sun over a year, first one hemisphere and then the other leans toward the Sun. The hemisphere tilted toward "
    "the Sun receives more direct sunlight and longer days, which brings summer. At the same time the other "
    "hemisphere has winter. This is why December is a summer month in Australia.",
    "Clouds form when moist air rises and cools until the water vapour in it condenses on tiny particles of dust or "
    "salt. Meteorologists group clouds by their shape and height. Cumulus clouds are puffy and white, stratus clouds "
    "form flat grey layers, and cirrus clouds are thin wisps made of ice crystals high in the sky. Tall, dark "
    "cumulonimbus clouds can bring thunderstorms, heavy rain and hail.",
    "A rainbow appears when sunlight shines through raindrops while the Sun is behind the observer. Each drop bends "
    "the light as it enters, reflects it off the back of the drop and bends it again as it leaves. Because different "
    "colours bend by slightly different amounts, white sunlight spreads into a band of colours: red on the outside, "
    "followed by orange, yellow, green, blue, indigo and violet.",
    "Tides are the regular rise and fall of the sea along the coast. They are caused mainly by the gravity of the "
    "Moon, which pulls on the Earth's oceans and creates bulges of water on the side facing the Moon and on the "
    "opposite side. As the Earth rotates, most coasts pass through two high tides and two low tides each day. The "
    "Sun also affects the tides, and the highest tides come when Sun and Moon line up.",
    "Glaciers are large, slow-moving masses of ice formed from snow that piles up over many years and is pressed "
    "into ice. They flow downhill under their own weight, carving valleys and carrying rocks great distances. Most "
    "of the world's fresh water is frozen in the ice sheets of Antarctica and Greenland. In many mountain ranges, "
    "glaciers have been shrinking as the climate has warmed.",
    "Deserts are regions that receive very little rain, usually less than about twenty-five centimetres a year. Not "
    "all deserts are hot: Antarctica is the largest desert on Earth. Hot deserts such as the Sahara can be very warm "
    "by day and surprisingly cold at night, because dry air and clear skies let heat escape. Plants and animals that "
    "live in deserts have ways to save water, such as thick stems or activity only at night.",
    "Tropical rainforests grow near the equator, where it is warm and wet all year. They cover a small part of the "
    "Earth's land but are home to more than half of its known plant and animal species. The Amazon rainforest in "
    "South America is the largest. Rainforests have layers, from the dark forest floor to the sunny canopy, and many "
    "animals spend their whole lives in the treetops.",
    "Soil is a mixture of broken rock, decaying plant and animal matter, water and air. It forms very slowly, as "
    "weather breaks down rock and living things add organic material. Earthworms, fungi and bacteria help recycle "
    "nutrients that plants need. Good soil holds water but also drains well, and farmers protect it by rotating "
    "crops and covering bare ground to prevent erosion by wind and rain.",
    "Mount Everest, on the border between Nepal and China, is the highest mountain above sea level, at about eight "
    "thousand eight hundred and fifty metres. It is part of the Himalayas, a range formed as the Indian plate pushed "
    "into Asia. The first confirmed climbers to reach the summit were Edmund Hillary and Tenzing Norgay in 1953. The "
    "thin air near the top makes breathing hard, and most climbers carry bottled oxygen.",
    "The Nile is one of the longest rivers in the world, flowing north through eastern Africa into the Mediterranean "
    "Sea. Its two main branches, the White Nile and the Blue Nile, meet at Khartoum in Sudan. For thousands of years "
    "the yearly flooding of the Nile left rich soil along its banks, which allowed farming in the desert and helped "
    "ancient Egyptian civilisation to grow.",
    "The Pacific is the largest and deepest of the Earth's oceans, covering about a third of the planet's surface. It "
    "stretches from the Arctic in the north to the Southern Ocean around Antarctica. Its deepest point, the "
    "Challenger Deep in the Mariana Trench, lies about eleven kilometres below the surface. Thousands of islands are "
    "scattered across it, many of them formed by volcanoes or coral reefs.",
    "Antarctica is the coldest, windiest and driest continent. Almost all of it is covered by an ice sheet that is "
    "in places more than four kilometres thick. No country owns Antarctica; an international treaty signed in 1959 "
    "keeps it for peaceful scientific research. Penguins, seals and many seabirds live along its coasts, but very "
    "few plants can survive there.",
    "Coral reefs are built by tiny animals called coral polyps, which produce hard skeletons of calcium carbonate. "
    "Over many years these skeletons build up into large structures that shelter a huge variety of fish and other "
    "sea life. Reefs grow best in warm, clear, shallow water. The Great Barrier Reef off the coast of Australia is "
    "the largest reef system in the world and can be seen from space.",
    # ---------------------------------------------------------------- living things
    "Photosynthesis is the process by which green plants make their own food. Using energy from sunlight, they "
    "combine carbon dioxide from the air with water from the soil to produce sugar, and they release oxygen as a "
    "by-product. The process takes place mainly in the leaves, inside structures called chloroplasts that contain "
    "the green pigment chlorophyll. Almost all life on Earth depends on it, directly or indirectly.",
    "Honey bees live in colonies that can contain tens of thousands of insects. Each colony has one queen, who lays "
    "the eggs, a few hundred male drones, and many female worker bees. Workers collect nectar and pollen from "
    "flowers, build wax comb, care for the young and guard the hive. While gathering food they carry pollen from "
    "flower to flower, which helps many crops produce fruit and seeds.",
    "Ants are social insects that live in organised colonies. Most ants in a colony are sterile female workers, "
    "while one or more queens lay the eggs. Ants communicate mainly through chemicals called pheromones, laying "
    "scent trails that lead others to food. Some species farm fungus, others keep aphids for the sweet liquid they "
    "produce, and a few raid other colonies. Ants are found on every continent except Antarctica.",
    "Whales are large marine mammals. Like other mammals they breathe air, are warm-blooded and feed their young "
    "with milk. There are two main groups: toothed whales, such as sperm whales and dolphins, and baleen whales, "
    "which filter small animals from the water through plates of baleen. The blue whale, a baleen whale, is the "
    "largest animal known to have lived, larger even than the biggest dinosaurs.",
    "Elephants are the largest living land animals. African elephants are bigger than Asian elephants and have "
    "larger ears, which help them lose heat. An elephant's trunk is a long, flexible nose and upper lip used for "
    "breathing, smelling, drinking and picking up objects. Elephants live in family groups led by an older female, "
    "and they are known for their strong memories and complex social lives.",
    "Many birds migrate, travelling long distances between the places where they breed and where they spend the "
    "winter. The Arctic tern makes one of the longest journeys, flying from the Arctic to the Antarctic and back each "
    "year. Birds find their way using the position of the Sun and stars, the Earth's magnetic field and landmarks "
    "such as coastlines and rivers. Migration lets them follow seasonal supplies of food.",
    "Penguins are flightless birds that live almost entirely in the Southern Hemisphere. Their wings have become "
    "stiff flippers that make them fast, agile swimmers, and they catch fish, squid and krill underwater. A thick "
    "layer of fat and tightly packed feathers keep them warm. The emperor penguin, the largest species, breeds "
    "during the Antarctic winter, and the males keep the eggs warm on their feet.",
    "Dinosaurs were a group of reptiles that dominated life on land for more than one hundred and fifty million "
    "years. Some, like Tyrannosaurus, were fierce meat-eaters, while others, like the long-necked sauropods, ate "
    "plants. Most dinosaurs died out about sixty-six million years ago, probably after a large asteroid struck the "
    "Earth. Birds are descended from a group of small feathered dinosaurs.",
    "Fossils are the preserved remains or traces of living things from the distant past. Most form when a plant or "
    "animal is buried quickly in mud or sand, and minerals slowly replace its hard parts as the sediment turns to "
    "rock. Footprints, burrows and even droppings can also become fossils. By studying fossils, scientists learn "
    "how life on Earth has changed over hundreds of millions of years.",
    "Every living thing is made of cells, the smallest units of life. Some organisms, such as bacteria, consist of a "
    "single cell, while a human body contains tens of trillions. Animal and plant cells have a nucleus that holds "
    "the genetic material, surrounded by a jelly-like cytoplasm and an outer membrane. Plant cells also have a "
    "rigid cell wall and chloroplasts for photosynthesis.",
    "DNA is the molecule that carries the genetic instructions of living things. It is shaped like a twisted ladder, "
    "a double helix, whose rungs are made of pairs of four chemical bases. The order of these bases spells out genes, "
    "which tell cells how to build proteins. When a cell divides, its DNA is copied so that each new cell receives "
    "a full set of instructions. Children inherit half of their DNA from each parent.",
    "Bacteria are tiny single-celled organisms found almost everywhere: in soil, water, the air and inside our "
    "bodies. Most are harmless and many are useful. Bacteria in the gut help digest food, and others are used to "
    "make yoghurt and cheese. A few cause diseases, such as tuberculosis and cholera. Antibiotics can kill harmful "
    "bacteria, but overusing them has allowed some bacteria to become resistant.",
    "Trees are woody plants with a single main stem, the trunk, which supports branches and leaves. Each year many "
    "trees add a new layer of wood, and counting these growth rings shows a tree's age. Trees take in carbon dioxide "
    "and store carbon in their wood, give shade, and provide homes for birds, insects and other animals. Some "
    "bristlecone pines in North America are thought to be almost five thousand years old.",
    "Octopuses are sea animals with eight arms and no bones, which lets them squeeze through very small gaps. They "
    "have three hearts and blue blood. Octopuses are known for their intelligence: they can solve puzzles, open jars "
    "and use shells as shelters. Special skin cells let them change colour and texture in an instant to hide from "
    "predators or to signal to other octopuses.",
    # ---------------------------------------------------------------- the human body
    "The human heart is a muscular organ about the size of a fist that pumps blood around the body. It has four "
    "chambers: two upper atria that receive blood and two lower ventricles that push it out. The right side sends "
    "blood to the lungs to collect oxygen, and the left side pumps the oxygen-rich blood to the rest of the body. At "
    "rest, an adult heart beats roughly sixty to one hundred times a minute.",
    "The lungs are the organs of breathing. Air travels down the windpipe into branching tubes that end in millions "
    "of tiny air sacs called alveoli. There, oxygen passes into the blood and carbon dioxide passes out to be "
    "breathed away. The diaphragm, a dome-shaped muscle below the lungs, tightens to draw air in and relaxes to let "
    "it out. An adult breathes about twelve to twenty times a minute at rest.",
    "The adult human skeleton has about two hundred and six bones. Bones support the body, protect organs such as the "
    "brain and heart, and work with muscles to allow movement. The inside of many bones contains marrow, which makes "
    "new blood cells. Bones are living tissue: they grow during childhood, repair themselves after a break and need "
    "calcium and vitamin D to stay strong.",
    "Digestion is the process of breaking food down into substances the body can use. It begins in the mouth, where "
    "teeth chew food and saliva starts to break down starch. In the stomach, acid and enzymes continue the work. Most "
    "nutrients are absorbed into the blood through the walls of the small intestine, while the large intestine "
    "absorbs water and forms waste. The whole journey can take a day or more.",
    "The brain is the control centre of the body. It receives information from the senses, controls movement, and "
    "is responsible for thinking, memory and emotion. The brain contains billions of nerve cells called neurons, "
    "which pass signals to each other through electrical and chemical messages. Although it makes up only about two "
    "percent of body weight, the brain uses around a fifth of the body's energy.",
    "Sleep is essential for health. During sleep the body repairs tissues, and the brain sorts and stores memories. "
    "Sleep comes in cycles of lighter and deeper stages, including rapid eye movement sleep, when most vivid dreams "
    "occur. Most adults need about seven to nine hours a night, while children and teenagers need more. Too little "
    "sleep affects mood, concentration and the immune system.",
    "Vaccines help the body defend itself against disease. A vaccine contains a weakened or inactive form of a germ, "
    "or part of one, which cannot cause the illness but teaches the immune system to recognise it. If the person is "
    "later exposed to the real germ, their body can fight it off quickly. Vaccination has greatly reduced diseases "
    "such as measles and polio, and it led to the eradication of smallpox.",
    "Skin is the largest organ of the human body. It protects the inside of the body from germs, water loss and "
    "sunlight, and it helps control temperature through sweating. Nerve endings in the skin sense touch, pain, heat "
    "and cold. Skin renews itself constantly: the outer layer is replaced about every month. A pigment called "
    "melanin gives skin its colour and helps protect it from ultraviolet light.",
    "Blood is made of a yellowish liquid called plasma that carries red cells, white cells and platelets. Red blood "
    "cells contain haemoglobin, which carries oxygen from the lungs to the rest of the body. White blood cells fight "
    "infection, and platelets help blood clot when a vessel is damaged. An adult has about five litres of blood, and "
    "a single drop holds millions of red cells.",
    "The eye works somewhat like a camera. Light enters through the cornea and the pupil, and the lens focuses it "
    "onto the retina at the back of the eye. The retina contains cells called rods, which work in dim light, and "
    "cones, which detect colour. These cells turn light into nerve signals that travel along the optic nerve to the "
    "brain, which forms them into the images we see.",
    "Regular exercise strengthens the heart and lungs, builds muscle and bone, and improves mood and sleep. Health "
    "organisations commonly advise adults to do at least two and a half hours of moderate activity, such as brisk "
    "walking or cycling, each week, along with exercises that strengthen the muscles. Even short periods of activity "
    "are better than none, and it is never too late to start.",
    "A balanced diet includes a variety of foods: fruit and vegetables, whole grains, protein from sources such as "
    "beans, fish, eggs or meat, and some dairy or alternatives. These provide carbohydrates for energy, proteins for "
    "growth and repair, fats, vitamins and minerals. Drinking enough water is also important. Eating too much sugar, "
    "salt and highly processed food over time raises the risk of several diseases.",
    "Teeth are covered with enamel, the hardest substance in the human body. Children grow twenty baby teeth, which "
    "are gradually replaced by thirty-two adult teeth. Bacteria in the mouth feed on sugar and produce acids that "
    "can wear holes in the enamel, known as cavities. Brushing twice a day with fluoride toothpaste, cleaning "
    "between the teeth and eating less sugar help keep teeth healthy.",
    # ---------------------------------------------------------------- science
    "Everything around us is made of atoms, tiny particles far too small to see. An atom has a central nucleus, "
    "containing protons and neutrons, surrounded by electrons. The number of protons decides which element an atom "
    "belongs to: hydrogen has one, carbon six and oxygen eight. Atoms join together to form molecules; a water "
    "molecule, for example, is made of two hydrogen atoms and one oxygen atom.",
    "Gravity is the force by which objects with mass attract one another. It keeps our feet on the ground, holds the "
    "Moon in orbit around the Earth and keeps the planets circling the Sun. Isaac Newton described gravity with a "
    "law in the seventeenth century, and Albert Einstein later explained it as the bending of space and time by "
    "mass. On the Moon, gravity is about one sixth as strong as on Earth.",
    "Electricity is the flow of electric charge, usually carried by electrons moving through a wire. A complete loop "
    "of wire, called a circuit, is needed for current to flow. Materials such as copper conduct electricity well, "
    "while rubber and plastic are insulators that block it. Power stations generate electricity by spinning "
    "generators with steam, water, wind or other sources, and it reaches homes through a network of cables.",
    "A magnet produces a magnetic field that attracts iron and some other metals. Every magnet has a north pole and a "
    "south pole: unlike poles attract and like poles repel. The Earth itself behaves like a giant magnet, which is "
    "why a compass needle points roughly north. Electricity and magnetism are closely linked, and electric motors "
    "and generators work by using that connection.",
    "Light travels faster than anything else, at about three hundred thousand kilometres per second in empty space. "
    "Light from the Sun takes about eight minutes to reach the Earth. Visible light is only a small part of a wider "
    "range of waves called the electromagnetic spectrum, which also includes radio waves, microwaves, infrared, "
    "ultraviolet light, X-rays and gamma rays.",
    "Sound is a vibration that travels through a material such as air, water or solid objects as a wave. When the "
    "vibrations reach our ears, the eardrum vibrates too and the brain interprets the signal as sound. Sound cannot "
    "travel through empty space. In air it moves at about three hundred and forty metres per second, much slower "
    "than light, which is why we see lightning before we hear the thunder.",
    "Matter on Earth is commonly found in three states: solid, liquid and gas. In a solid the particles are packed "
    "tightly in fixed positions, in a liquid they can slide past each other, and in a gas they move freely and fill "
    "any container. Heating or cooling can change matter from one state to another. Water, for example, freezes "
    "into ice at zero degrees Celsius and boils into steam at one hundred degrees at sea level.",
    "Chemical reactions rearrange atoms to make new substances. When wood burns, it reacts with oxygen in the air to "
    "produce carbon dioxide, water and heat. Rusting is a slower reaction in which iron combines with oxygen and "
    "water. Signs that a reaction has taken place include a change of colour, the release of gas, the giving off of "
    "heat or light, and the formation of a solid.",
    "The periodic table arranges all known chemical elements in order of their atomic number, the number of protons "
    "in each atom. Elements in the same column tend to behave in similar ways. The table was developed by the "
    "Russian chemist Dmitri Mendeleev in 1869, who left gaps for elements that had not yet been discovered and "
    "correctly predicted some of their properties.",
    "Energy cannot be created or destroyed, only changed from one form to another. A falling ball turns stored "
    "energy into the energy of motion, a light bulb turns electrical energy into light and heat, and our bodies turn "
    "the chemical energy in food into movement and warmth. Renewable energy sources, such as sunlight, wind and "
    "flowing water, are replenished naturally and do not run out.",
    # ---------------------------------------------------------------- space
    "The Sun is a star at the centre of our solar system. It is a huge ball of hot gas, mostly hydrogen and helium, "
    "and it shines because of nuclear fusion in its core, where hydrogen is turned into helium and enormous amounts "
    "of energy are released. The Sun is about one hundred and fifty million kilometres from Earth, and its diameter "
    "is about one hundred and nine times that of our planet.",
    "The Moon is the Earth's only natural satellite. It is about a quarter of the Earth's width and orbits the planet "
    "roughly once every twenty-seven days. The Moon does not make its own light; it reflects sunlight, and the "
    "changing amount of its lit side that we can see gives us its phases, from new moon to full moon and back. The "
    "same side of the Moon always faces the Earth.",
    "Jupiter is the largest planet in the solar system, more than eleven times as wide as the Earth. It is a gas "
    "giant made mostly of hydrogen and helium, with no solid surface. Its colourful bands are clouds moved by strong "
    "winds, and its Great Red Spot is a storm larger than the Earth that has raged for centuries. Jupiter has dozens "
    "of moons, including Ganymede, the largest moon in the solar system.",
    "Mars is the fourth planet from the Sun and is often called the Red Planet because iron oxide, or rust, in its "
    "soil gives it a reddish colour. It is smaller than the Earth and has a thin atmosphere made mostly of carbon "
    "dioxide. Mars has the tallest volcano in the solar system, Olympus Mons, and signs that liquid water once flowed "
    "on its surface. Several robotic rovers have explored it.",
    "Saturn, the sixth planet from the Sun, is famous for its bright rings. The rings are made of countless pieces "
    "of ice and rock, ranging from tiny grains to chunks as big as houses. Like Jupiter, Saturn is a gas giant made "
    "mostly of hydrogen and helium. It is so light for its size that it would float in water, if there were an "
    "ocean large enough. Its largest moon, Titan, has a thick atmosphere.",
    "The solar system consists of the Sun and everything that orbits it. There are eight planets: Mercury, Venus, "
    "Earth and Mars are small rocky worlds, while Jupiter, Saturn, Uranus and Neptune are giants made mostly of gas "
    "and ice. Dwarf planets such as Pluto, along with asteroids and comets, also orbit the Sun. The solar system "
    "formed about four and a half billion years ago from a cloud of gas and dust.",
    "A galaxy is a huge collection of stars, gas and dust held together by gravity. Our own galaxy, the Milky Way, is "
    "a spiral galaxy containing hundreds of billions of stars, and the Sun lies in one of its arms. On a dark night "
    "away from city lights, part of the Milky Way can be seen as a pale band across the sky. The observable universe "
    "contains billions of other galaxies.",
    "In July 1969 the American Apollo 11 mission landed the first people on the Moon. Neil Armstrong stepped onto the "
    "surface first, followed by Buzz Aldrin, while Michael Collins remained in orbit in the command module. The "
    "astronauts collected rock samples, set up experiments and planted a flag before returning safely to Earth. Six "
    "Apollo missions landed on the Moon between 1969 and 1972.",
    "The International Space Station is a large spacecraft that orbits the Earth about every ninety minutes, roughly "
    "four hundred kilometres above the surface. It was built from modules launched separately and joined in orbit by "
    "several countries, including the United States, Russia, Japan, Canada and members of the European Space "
    "Agency. Astronauts have lived on board continuously since 2000, carrying out scientific experiments.",
    "Stars are born in huge clouds of gas and dust called nebulae. Gravity pulls the material together until the "
    "centre becomes hot and dense enough for nuclear fusion to begin. A star like the Sun shines steadily for "
    "billions of years, then swells into a red giant and finally leaves behind a small, dense white dwarf. Much more "
    "massive stars end their lives in huge explosions called supernovae.",
    "Comets are small bodies of ice, dust and rock that orbit the Sun, often on long, stretched paths. When a comet "
    "comes close to the Sun, its ice turns to gas and forms a glowing cloud called a coma, and the solar wind pushes "
    "gas and dust into long tails that point away from the Sun. Halley's Comet is one of the best known; it returns "
    "to the inner solar system about every seventy-six years.",
    # ---------------------------------------------------------------- history
    "The ancient Egyptians built the pyramids of Giza more than four thousand five hundred years ago as tombs for "
    "their kings, the pharaohs. The largest, the Great Pyramid, was built for the pharaoh Khufu and was the tallest "
    "human-made structure in the world for thousands of years. It was made from millions of stone blocks, cut and "
    "moved by large teams of skilled workers.",
    "The Roman Empire was one of the largest empires of the ancient world. At its height it stretched from Britain in "
    "the north to Egypt in the south and from Spain to the Middle East. The Romans built roads, bridges and "
    "aqueducts, many of which still stand, and their language, Latin, is the ancestor of Italian, Spanish, French, "
    "Portuguese and Romanian. The western part of the empire fell in the fifth century.",
    "The Great Wall of China is a series of walls and fortifications built over many centuries to protect Chinese "
    "states from invasions from the north. The best-known sections were built during the Ming dynasty, between the "
    "fourteenth and seventeenth centuries, from brick and stone. Including all its branches, the wall runs for "
    "thousands of kilometres across mountains, deserts and grasslands.",
    "The ancient Olympic Games were held in Olympia, Greece, every four years for more than a thousand years, in "
    "honour of the god Zeus. Events included running, wrestling, boxing and chariot racing. The modern Olympic Games "
    "were revived in 1896, with the first Games held in Athens. Today the Summer and Winter Olympics each take place "
    "every four years, and athletes from over two hundred countries compete.",
    "The Renaissance was a period of European history, beginning in Italy in the fourteenth century, marked by "
    "renewed interest in the art and learning of ancient Greece and Rome. Artists such as Leonardo da Vinci, "
    "Michelangelo and Raphael created some of the most famous paintings and sculptures ever made. The period also "
    "saw advances in science, exploration and architecture.",
    "Around 1440, Johannes Gutenberg developed a printing press with movable metal type in Germany. Before then, "
    "books in Europe were mostly copied by hand, which was slow and expensive. Printing made books much cheaper and "
    "more common, helped spread new ideas quickly across Europe, and encouraged more people to learn to read. The "
    "Gutenberg Bible was one of the first major books printed this way.",
    "The Industrial Revolution began in Britain in the late eighteenth century and spread to other countries. "
    "Machines powered by water and then by steam began to do work that had been done by hand, first in the making of "
    "cloth and later in many industries. Factories grew, cities expanded as people moved from the countryside to "
    "find work, and railways and steamships transformed travel and trade.",
    "The steam engine uses the pressure of steam from boiling water to produce motion. Early engines were used to "
    "pump water out of mines. In the late eighteenth century James Watt greatly improved their efficiency, and steam "
    "engines went on to power factories, locomotives and ships. They were a central technology of the Industrial "
    "Revolution, until electric motors and internal combustion engines largely replaced them.",
    "Writing was invented independently in several places. One of the earliest systems, cuneiform, was developed in "
    "Mesopotamia more than five thousand years ago, when people pressed wedge-shaped marks into clay tablets to keep "
    "records of goods and trade. The ancient Egyptians developed hieroglyphs, and writing also arose in China and in "
    "Central America. Alphabets, with a letter for each sound, came later.",
    "The wheel is one of the most important inventions in history. The oldest known wheels, from about five and a "
    "half thousand years ago, were used in Mesopotamia and Europe, first for making pottery and soon afterwards for "
    "carts. Early wheels were solid wooden discs; lighter wheels with spokes came later and made fast chariots "
    "possible. Wheels are now part of countless machines, from clocks to cars.",
    "In 1492 Christopher Columbus, sailing for the Spanish crown, crossed the Atlantic Ocean and reached islands in "
    "the Caribbean, while trying to find a western sea route to Asia. His voyages began lasting contact between "
    "Europe and the Americas, which brought great changes to both, including the exchange of crops, animals and "
    "diseases, and the colonisation of the Americas by European powers.",
    # ---------------------------------------------------------------- technology
    "The telephone allowed people to talk to each other over long distances by turning sound into electrical signals "
    "and back again. Alexander Graham Bell received a patent for a telephone in 1876. Telephone networks soon "
    "connected homes and businesses across countries. Today most calls are made on mobile phones, which send signals "
    "by radio to nearby masts rather than along wires.",
    "The internet is a worldwide network of computer networks that exchange data using shared rules called "
    "protocols. It grew out of research networks in the United States in the late 1960s and spread widely in the "
    "1990s. The World Wide Web, invented by Tim Berners-Lee in 1989, is a system of linked pages that runs on the "
    "internet. Email, video calls and online shopping all rely on the internet.",
    "A computer is a machine that follows instructions, called programs, to process information. Its main parts "
    "include a processor, which carries out instructions, memory, which holds data while it is being used, and "
    "storage, which keeps files when the power is off. Early electronic computers filled whole rooms, but modern "
    "chips hold billions of tiny transistors, and a phone today is far more powerful than those early machines.",
    "The first successful powered aeroplane flight was made by the brothers Orville and Wilbur Wright in December "
    "1903 at Kitty Hawk in North Carolina. Their aircraft stayed in the air for twelve seconds on its first flight. "
    "Within a few decades aeroplanes were carrying mail and passengers, and jet engines, developed in the 1930s and "
    "1940s, made air travel faster. Today millions of people fly every day.",
    "The bicycle in its modern form, with two wheels of equal size, pedals driving the rear wheel through a chain, "
    "and air-filled tyres, appeared in the late nineteenth century. Bicycles are cheap to run, produce no pollution "
    "and are one of the most efficient ways for a person to travel. In countries such as the Netherlands and "
    "Denmark, a large share of everyday trips are made by bike.",
    "Railways use trains running on steel rails to carry passengers and goods. The first public steam railways "
    "opened in Britain in the 1820s, and railway networks soon spread across Europe, North America and beyond, "
    "making travel much faster and cheaper. Modern high-speed trains in countries such as Japan, France and China "
    "can travel at more than three hundred kilometres per hour.",
    "Paper was invented in China about two thousand years ago. It is made from plant fibres, such as wood pulp, that "
    "are mixed with water, spread thinly on a screen, pressed and dried into sheets. The craft of papermaking spread "
    "along trade routes to the Middle East and then to Europe. Paper can be recycled several times, which saves "
    "trees, water and energy.",
    "Glass is made by melting sand, which is mostly silica, together with soda ash and limestone at very high "
    "temperatures, then cooling the liquid so quickly that it does not form crystals. People have made glass for "
    "thousands of years. It is used for windows, bottles, lenses and screens. Glass can be recycled again and again "
    "without losing quality.",
    "Plastics are materials made mostly from chemicals taken from oil and natural gas. They can be moulded into "
    "almost any shape, are light and strong, and are used in packaging, clothing, cars and medical equipment. "
    "Because most plastics break down extremely slowly, plastic waste builds up in landfills and the oceans, where it "
    "can harm wildlife. Reducing, reusing and recycling plastic helps limit this pollution.",
    "Recycling turns used materials into new products. Paper, glass, metal cans and many plastics can be collected, "
    "sorted, cleaned and processed into raw materials again. Recycling saves energy and natural resources and "
    "reduces the amount of waste sent to landfills. Items are easier to recycle when they are clean and sorted "
    "correctly according to local rules.",
    "The magnetic compass was first used for navigation in China about a thousand years ago and later spread to "
    "Europe and the Middle East. A compass has a magnetised needle that turns to line up with the Earth's magnetic "
    "field, pointing roughly north. It allowed sailors to keep their course even when clouds hid the Sun and stars, "
    "and it remains a basic tool for hikers today.",
    "People have measured time with many kinds of devices, including sundials, water clocks and hourglasses. "
    "Mechanical clocks driven by weights appeared in Europe in the thirteenth and fourteenth centuries, and the "
    "pendulum clock, introduced in the seventeenth century, made timekeeping far more accurate. Today the most "
    "precise clocks are atomic clocks, which lose less than a second over millions of years.",
    # ---------------------------------------------------------------- society and culture
    "Money is anything widely accepted in exchange for goods and services. Before money, people often traded goods "
    "directly, which is called barter. Over time societies used shells, metals and coins, then paper banknotes. "
    "Today much money exists only as numbers in bank accounts and is spent by card or phone. Money also serves as a "
    "way to measure value and to save for the future.",
    "A library is a collection of books and other materials that people can read or borrow. Famous ancient libraries "
    "include the Library of Alexandria in Egypt. Modern public libraries lend books, films and music, offer free "
    "internet access, and run activities such as reading groups and homework clubs. Librarians help visitors find "
    "reliable information on almost any subject.",
    "Democracy is a system of government in which power rests with the people, who usually choose their leaders in "
    "free and fair elections. The word comes from ancient Greek and means rule by the people; the city of Athens "
    "practised an early form of it. Modern democracies protect rights such as freedom of speech and the press, and "
    "they divide power among different branches of government.",
    "Maps are drawings that show the features of an area, such as roads, rivers, towns and mountains, from above. A "
    "map uses a scale to show how distances on paper relate to real distances, and a key explains its symbols. Lines "
    "of latitude and longitude form a grid that lets any place on Earth be given an exact position. Today, satellite "
    "navigation systems combine digital maps with signals from space.",
    "The Earth is divided into time zones because the Sun rises and sets at different moments in different places. "
    "There are roughly twenty-four zones, each about fifteen degrees of longitude wide, though their borders often "
    "follow national boundaries. Time is measured from a reference called Coordinated Universal Time. When it is noon "
    "in London in winter, it is early morning in New York and evening in Tokyo.",
    "The calendar most of the world uses today is the Gregorian calendar, introduced in 1582 by Pope Gregory XIII. It "
    "has three hundred and sixty-five days in a common year and adds an extra day, the twenty-ninth of February, in "
    "leap years. Leap years keep the calendar in step with the Earth's orbit around the Sun, which takes about three "
    "hundred and sixty-five and a quarter days.",
    "There are about seven thousand languages spoken in the world today. Mandarin Chinese has the most native "
    "speakers, while English is the most widely learned as a second language. Languages change over time, borrowing "
    "words from one another; English, for example, has taken many words from French and Latin. Many small languages "
    "are spoken by only a few people and are at risk of disappearing.",
    "The number zero was a major step in the history of mathematics. Mathematicians in India were treating zero as a "
    "number in its own right by the seventh century, and the place-value system of digits from zero to nine, "
    "developed there, spread through the Arab world to Europe. This system, often called Hindu-Arabic numerals, made "
    "arithmetic much easier than Roman numerals did.",
    "The piano is a musical instrument played by pressing keys, which make felt-covered hammers strike tightened "
    "strings. It was invented in Italy around 1700 by Bartolomeo Cristofori. A standard piano has eighty-eight keys, "
    "fifty-two white and thirty-six black. Because the player can play soft or loud by changing how hard the keys "
    "are pressed, its full name was originally pianoforte, meaning soft-loud.",
    "Chess is a strategy game for two players on a board of sixty-four squares. Each player starts with sixteen "
    "pieces: a king, a queen, two rooks, two bishops, two knights and eight pawns. The aim is to checkmate the "
    "opponent's king, trapping it so that it cannot escape capture. Chess probably developed from an Indian game "
    "about one and a half thousand years ago and is now played worldwide.",
    "Football, known as soccer in some countries, is the world's most popular sport. Two teams of eleven players try "
    "to score by getting the ball into the other team's goal, using any part of the body except the hands and arms; "
    "only the goalkeepers may handle the ball. The modern rules were written in England in 1863. The FIFA World Cup, "
    "held every four years, is watched by billions of people.",
    "Tea is made by pouring hot water over the dried leaves of the tea plant, which was first grown in China. It is "
    "one of the most widely drunk beverages in the world, after water. Green, black and oolong teas all come from "
    "the same plant but are processed differently: black tea leaves are allowed to oxidise fully, while green tea "
    "leaves are heated soon after picking to stop oxidation.",
    "Coffee is made from the roasted seeds, commonly called beans, of the coffee plant, which grows in tropical "
    "regions. According to tradition it was first used in Ethiopia, and by the fifteenth century it was being drunk "
    "in Yemen. Today Brazil is the largest producer of coffee. The caffeine in coffee is a mild stimulant that can "
    "make people feel more alert.",
    "Bread is one of the oldest prepared foods, made for thousands of years from flour and water. Most bread today "
    "is leavened with yeast, a living fungus that feeds on sugars in the dough and releases bubbles of carbon "
    "dioxide, making it rise. Kneading develops gluten, a protein network that traps the gas. Flatbreads, such as "
    "tortillas and chapatis, are made with little or no leavening.",
    "Rice is the main food for more than half of the world's people, especially in Asia. It is usually grown in "
    "flooded fields called paddies, which help control weeds. China and India are the largest producers. There are "
    "thousands of varieties, from long-grain rice such as basmati to the short, sticky grains used in sushi. Brown "
    "rice keeps its outer bran layer, while white rice has it removed.",
    "Chocolate is made from the seeds of the cacao tree, which grows in hot, rainy regions near the equator. The seeds "
    "are fermented, dried, roasted and ground into a paste, which is mixed with sugar and often milk. The Maya and "
    "Aztecs of Central America drank cacao as a bitter, spiced drink long before it reached Europe in the sixteenth "
    "century. Today much of the world's cacao is grown in West Africa.",
    "The potato was first grown in the Andes mountains of South America thousands of years ago. Spanish explorers "
    "brought it to Europe in the sixteenth century, and it became an important food in many countries because it "
    "grows well in cool climates and produces a lot of food from a small area. Potatoes can be boiled, baked, mashed "
    "or fried and are rich in starch and vitamin C.",
    "Salt, made mostly of sodium chloride, has been valued throughout history for flavouring food and preserving it. "
    "It is obtained by evaporating seawater or by mining rock salt from underground deposits. Salt was once so "
    "important that it was traded over long distances and used as a form of payment. The body needs a little salt "
    "to work properly, but too much can raise blood pressure.",
    "Honey is a sweet, thick liquid made by honey bees from the nectar of flowers. Bees store it in wax cells in the "
    "hive and fan it with their wings until much of the water evaporates. Because it contains little water and is "
    "slightly acidic, honey resists spoiling and can last for a very long time if it is kept sealed. Its taste and "
    "colour depend on the flowers the bees visited.",
    "Cotton is a soft fibre that grows around the seeds of the cotton plant. After harvesting, the fibres are "
    "separated from the seeds, cleaned and spun into thread, which is woven or knitted into fabric. Cotton cloth is "
    "comfortable, breathable and easy to wash, which makes it one of the most widely used natural fibres for "
    "clothing. Cotton plants need plenty of sunshine and water.",
    "Wool is the fibre that grows as the fleece of sheep, and also of some other animals such as goats and alpacas. "
    "Sheep are usually sheared once a year, which does not hurt them, and the fleece is washed, combed and spun into "
    "yarn. Wool keeps people warm because its crimped fibres trap air, and it stays warm even when damp.",
    "Cheese is made by curdling milk, usually with an enzyme called rennet and with bacteria that turn milk sugar into "
    "acid. The solid curds are separated from the liquid whey, then salted, shaped and often aged. Depending on the "
    "milk, the bacteria and the ageing, cheeses range from soft and mild to hard and strong. There are more than a "
    "thousand kinds of cheese made around the world.",
    "Bridges carry roads, railways and paths across rivers, valleys and other obstacles. Engineers choose among "
    "several basic designs. Beam bridges rest on supports at each end, arch bridges push their load outward into "
    "strong foundations, and suspension bridges hang the deck from cables slung between tall towers. Suspension "
    "bridges can span the greatest distances, sometimes more than a kilometre and a half.",
    "Cities began to grow more than five thousand years ago, when farming produced enough food for some people to "
    "work at other jobs. Today more than half of the world's people live in towns and cities. Large cities need "
    "systems for transport, water supply, waste collection and power. Planners try to design cities with parks, "
    "public transport and housing so that they are healthy places to live.",
    "Farming began around ten thousand years ago, when people in several parts of the world started planting seeds "
    "and keeping animals instead of only hunting and gathering. Wheat and barley were among the first crops in the "
    "Middle East, rice in China and maize in Central America. Farming allowed people to settle in one place, and "
    "villages, towns and eventually cities grew up.",
    "Forests cover about a third of the Earth's land. They provide wood, food and medicines, shelter a large share of "
    "land animals and plants, and help regulate the climate by storing carbon. Forest roots hold soil in place and "
    "help keep rivers clean. Cutting down forests faster than they can regrow, known as deforestation, threatens "
    "wildlife and adds carbon dioxide to the atmosphere.",
    "Iron is one of the most common metals on Earth and has been used for tools and weapons for more than three "
    "thousand years. Steel is iron mixed with a small amount of carbon, which makes it much stronger and tougher. "
    "Steel is used to build bridges, skyscrapers, cars, ships and tools. Adding chromium produces stainless steel, "
    "which resists rust and is common in kitchens.",
    "Skyscrapers are very tall buildings with many floors. They became possible in the late nineteenth century, "
    "when steel frames could carry the weight of the walls and safe passenger lifts could carry people upstairs. "
    "Early skyscrapers rose in Chicago and New York. The Burj Khalifa in Dubai, completed in 2010, is more than eight "
    "hundred metres tall.",
    "Music is found in every known human culture. It is built from a few basic elements: rhythm, the pattern of long "
    "and short sounds in time; melody, a sequence of notes; and harmony, notes sounded together. Instruments are "
    "often grouped by how they make sound: strings, wind instruments, percussion and keyboards. People sing and play "
    "music to celebrate, to mourn, to dance and to tell stories.",
    "Dogs were the first animals to be domesticated, descended from wolves that began living alongside people tens "
    "of thousands of years ago. Over time, people bred dogs for herding, guarding, hunting and companionship, "
    "producing hundreds of breeds of very different sizes and shapes. Dogs have an excellent sense of smell, which "
    "is why they are used to search for missing people and to detect substances.",
    "Cats were domesticated in the Middle East around ten thousand years ago, probably because they hunted the mice "
    "and rats that gathered around stores of grain. In ancient Egypt cats were greatly valued and were linked with "
    "a goddess. Cats are skilled hunters with sharp hearing, whiskers that sense their surroundings and eyes adapted "
    "to see in dim light. They sleep for much of the day.",
    "Horses were domesticated on the grasslands of central Asia about five and a half thousand years ago. For "
    "thousands of years they were the fastest way to travel over land and were used for farming, transport and war. "
    "Horses can sleep standing up, thanks to a system of ligaments that locks their legs. Their age can be roughly "
    "estimated by looking at their teeth.",
    "Rivers carry water from higher ground down to lakes and the sea. A river begins at its source, which may be a "
    "spring, a melting glacier or a lake, and ends at its mouth. Along the way, it is joined by smaller streams "
    "called tributaries. Rivers shape the land by wearing away rock and depositing sand and mud, and many cities "
    "grew up beside them because they provide water, food and transport.",
    "Lightning is a giant spark of electricity in the atmosphere. Inside a storm cloud, collisions between ice "
    "particles build up separate regions of positive and negative charge, and when the difference becomes large "
    "enough, a sudden discharge flashes within the cloud or between the cloud and the ground. The intense heat makes "
    "the air expand violently, producing the sound of thunder.",
]

# Replay only (never held out): appended so that the held-out split of PROSE stays what it was when measured.
PROSE_EXTRA: list[str] = [
    "Neptune is the eighth and farthest known planet from the Sun. It is an ice giant, similar in size to Uranus, "
    "and its blue colour comes from methane in its atmosphere. Neptune has the strongest winds measured on any "
    "planet, reaching more than two thousand kilometres per hour. It was discovered in 1846 after astronomers "
    "noticed that something was pulling on the orbit of Uranus and calculated where the unseen planet should be.",
    "Venus is the second planet from the Sun and the hottest planet in the solar system, even though Mercury is "
    "closer to the Sun. Its thick atmosphere of carbon dioxide traps heat, keeping the surface hotter than an oven. "
    "Venus is about the same size as the Earth and is often the brightest object in the night sky after the Moon. It "
    "spins very slowly, and in the opposite direction to most planets.",
    "Mercury is the smallest planet in the solar system and the closest to the Sun. It has almost no atmosphere, so "
    "its temperature swings from scorching hot during the day to extremely cold at night. Its surface is covered "
    "with craters, much like the Moon. Mercury travels around the Sun faster than any other planet, completing an "
    "orbit in about eighty-eight Earth days.",
    "An eclipse happens when one body in space passes into the shadow of another. In a solar eclipse, the Moon moves "
    "between the Sun and the Earth and blocks the Sun's light for a short time. In a lunar eclipse, the Earth passes "
    "between the Sun and the Moon, and the Moon often turns a deep red colour. Looking directly at the Sun during a "
    "solar eclipse can damage the eyes.",
    "Telescopes collect and focus light so that distant objects appear brighter and larger. Galileo Galilei was one "
    "of the first to point a telescope at the sky, in 1609, and he discovered four large moons orbiting Jupiter. "
    "Modern telescopes on mountaintops and in space observe not only visible light but also radio waves, infrared "
    "and X-rays, revealing stars and galaxies billions of light years away.",
    "Hurricanes are powerful storms that form over warm tropical oceans. Warm, moist air rises and begins to spin, "
    "drawing in more air and growing into a huge system of clouds and wind around a calm centre called the eye. "
    "The same kind of storm is called a typhoon in the western Pacific and a cyclone in the Indian Ocean. They bring "
    "strong winds, heavy rain and storm surges that can flood coastal areas.",
    "Tornadoes are rapidly spinning columns of air that reach from a thunderstorm down to the ground. They are "
    "usually much smaller than hurricanes but can have even faster winds, strong enough to destroy buildings. The "
    "central United States has more tornadoes than anywhere else in the world, especially in spring. Weather "
    "services use radar to spot the storms that produce them and issue warnings.",
    "The atmosphere is the layer of gases surrounding the Earth. It is made mostly of nitrogen, about seventy-eight "
    "percent, and oxygen, about twenty-one percent, with small amounts of argon, carbon dioxide and water vapour. "
    "The atmosphere provides the air we breathe, protects us from harmful ultraviolet radiation and keeps the planet "
    "warm enough for life. It becomes thinner with height and gradually fades into space.",
    "Climate is the average weather of a place over many years, while weather describes conditions from day to "
    "day. The Earth's climate has changed many times in its history, with ice ages and warmer periods. Since the "
    "Industrial Revolution, burning coal, oil and gas has added large amounts of carbon dioxide to the atmosphere, "
    "trapping more heat and warming the planet. This affects sea levels, rainfall and ecosystems.",
    "Lakes are bodies of water surrounded by land. Most contain fresh water, but some, such as the Dead Sea, are very "
    "salty because water flows in but can only leave by evaporation. The Caspian Sea is the largest lake in the "
    "world by area, and Lake Baikal in Siberia is the deepest and oldest. Lakes provide drinking water, fish and "
    "places for recreation.",
    "Islands are areas of land completely surrounded by water. Some, like Great Britain, were once connected to a "
    "continent; others, like Hawaii and Iceland, were built by volcanoes rising from the sea floor; and many small "
    "tropical islands are made of coral. Greenland is the largest island in the world. Because they are isolated, "
    "islands often have plants and animals found nowhere else.",
    "Caves are natural openings in the ground large enough for a person to enter. Many form in limestone, when "
    "slightly acidic rainwater slowly dissolves the rock over thousands of years. Dripping water inside caves leaves "
    "behind minerals that build up into stalactites, which hang from the ceiling, and stalagmites, which grow up "
    "from the floor. Bats and other animals often live in caves.",
    "Frogs are amphibians, animals that usually begin life in water and later live partly on land. A frog lays its "
    "eggs in water, where they hatch into tadpoles that breathe with gills and swim with tails. Over several weeks "
    "the tadpoles grow legs, lose their tails and develop lungs, becoming adult frogs. Frogs can also absorb water "
    "and some oxygen through their thin, moist skin.",
    "Butterflies go through a complete change of body form called metamorphosis. A butterfly lays eggs on a plant, "
    "and each egg hatches into a caterpillar that eats leaves and grows quickly. The caterpillar then forms a "
    "chrysalis, inside which its body is rebuilt. Finally an adult butterfly with wings emerges. Many butterflies "
    "help pollinate flowers as they feed on nectar.",
    "Sharks are fish whose skeletons are made of cartilage rather than bone. There are more than five hundred "
    "species, from the small dwarf lanternshark to the whale shark, the largest fish in the sea, which feeds on tiny "
    "plankton. Sharks have an excellent sense of smell and can detect the weak electric fields of other animals. "
    "Many shark populations have fallen sharply because of overfishing.",
    "Owls are birds of prey that mostly hunt at night. Their large eyes face forward, giving them good vision in dim "
    "light, and they can turn their heads much further than most animals. Soft edges on their feathers let them fly "
    "almost silently, and their sharp hearing helps them locate mice and other prey in the dark. Owls often swallow "
    "small prey whole and later cough up pellets of bones and fur.",
    "Camels are well suited to life in deserts. Their humps store fat, not water, which the body can use for energy "
    "when food is scarce. Camels can go for days without drinking and then drink a large amount very quickly. Wide "
    "feet keep them from sinking into sand, and long eyelashes and closable nostrils protect them from blowing sand. "
    "People have used camels to carry goods across deserts for thousands of years.",
    "Kangaroos are marsupials that live in Australia. A female kangaroo carries her young, called a joey, in a pouch "
    "on her belly, where it keeps growing for months after birth. Kangaroos move by hopping on their strong back "
    "legs, using their long tails for balance, and they can travel quickly while using little energy. They eat "
    "grasses and other plants.",
    "Spiders are not insects but arachnids, with eight legs and bodies divided into two main parts. Most spiders "
    "make silk, which they use to build webs, wrap prey, line burrows and even travel on the wind. Spider silk is "
    "remarkably strong for its weight. Nearly all spiders are harmless to people, and they help control the numbers "
    "of insects.",
    "Mushrooms are the fruiting bodies of fungi, organisms that are neither plants nor animals. Most of a fungus "
    "lives hidden in soil or wood as a network of fine threads, and the mushroom appears above ground to release "
    "spores. Fungi break down dead material and recycle nutrients. Some mushrooms are good to eat, but others are "
    "deadly poisonous, and the two can look very similar.",
    "The human ear does more than hear. Sound waves enter the ear canal and make the eardrum vibrate; three tiny "
    "bones pass the vibrations to the fluid-filled cochlea, where hair cells turn them into nerve signals. Deeper "
    "inside, fluid-filled canals sense the movement and position of the head, which helps us keep our balance. Loud "
    "noise over time can damage the hair cells and cause hearing loss.",
    "The kidneys are two bean-shaped organs near the back of the body. They filter the blood, removing waste and "
    "extra water to make urine, which flows to the bladder. The kidneys also help control blood pressure and the "
    "balance of salts in the body. A person can live a healthy life with only one working kidney.",
    "Muscles make movement possible. Skeletal muscles, attached to bones by tendons, pull on the bones when they "
    "contract, and they work in pairs: one bends a joint while its partner straightens it. The heart is made of a "
    "special muscle that never tires, and smooth muscle in the walls of organs moves food through the gut. Regular "
    "exercise makes muscles stronger.",
    "Hand washing is one of the simplest ways to prevent the spread of illness. Washing with soap and water for at "
    "least twenty seconds removes germs picked up from surfaces, food and other people. It is especially important "
    "before eating or preparing food, after using the toilet and after coughing or sneezing. When soap and water "
    "are not available, an alcohol-based hand gel can help.",
    "Mathematics is the study of numbers, quantities, shapes and patterns. Arithmetic deals with adding, "
    "subtracting, multiplying and dividing; geometry studies shapes and space; and algebra uses letters to stand for "
    "unknown numbers. Mathematics is used in science, engineering, finance and everyday life, from measuring "
    "ingredients to planning a journey.",
    "A triangle is a shape with three straight sides and three angles. However its sides are arranged, the three "
    "angles of a flat triangle always add up to one hundred and eighty degrees. In a right-angled triangle, the "
    "Pythagorean theorem says that the square of the longest side equals the sum of the squares of the other two "
    "sides. Triangles are strong shapes, which is why they appear in bridges and roofs.",
    "A circle is the set of all points at the same distance from a centre. That distance is the radius, and twice "
    "the radius is the diameter. The distance around a circle, its circumference, is always a little more than "
    "three times its diameter; this ratio is the number pi, about 3.14159. Pi appears throughout mathematics and "
    "science.",
    "Percentages express a number as a part of one hundred. Fifty percent means half, and twenty-five percent means "
    "a quarter. Percentages make it easy to compare amounts, such as discounts in shops, interest rates at banks or "
    "the share of people who voted in an election. To find ten percent of a number, divide it by ten.",
    "The metric system measures length in metres, mass in grams and volume in litres. Larger and smaller units are "
    "formed by multiplying or dividing by ten, using prefixes such as kilo for a thousand and centi for a "
    "hundredth. It was introduced in France in the 1790s and is now used by almost every country for science, trade "
    "and daily life.",
    "Ancient Greece was a collection of city-states, such as Athens and Sparta, that shared a language and religion. "
    "Greek thinkers such as Socrates, Plato and Aristotle laid foundations for Western philosophy, and Greek "
    "mathematicians, playwrights and architects left a lasting influence. The Greeks also held the ancient Olympic "
    "Games and developed early forms of democracy.",
    "The Vikings were seafaring people from Scandinavia who, from the late eighth to the eleventh century, raided, "
    "traded and settled across large parts of Europe. Their long, shallow ships could cross open seas and sail up "
    "rivers. Vikings settled in Iceland and Greenland, and around the year 1000 Leif Erikson reached North America, "
    "centuries before Columbus.",
    "The Silk Road was a network of trade routes linking China with Central Asia, the Middle East and Europe for "
    "more than a thousand years. Merchants carried silk, spices, paper, glass and precious metals along it, usually "
    "passing goods from one trader to the next rather than travelling the whole way. Ideas, religions and "
    "inventions also spread along the routes.",
    "The Aztecs built a powerful empire in central Mexico in the fifteenth and early sixteenth centuries. Their "
    "capital, Tenochtitlan, stood on an island in a lake and was one of the largest cities in the world at the time, "
    "with canals, causeways, temples and markets. The empire fell to Spanish invaders and their local allies in "
    "1521. Mexico City now stands on the same site.",
    "Medieval castles were fortified homes built for kings and nobles in Europe, mostly between the eleventh and "
    "fifteenth centuries. Thick stone walls, towers, moats and gatehouses protected the people inside from attack. "
    "A castle was also a centre of local government and a symbol of its owner's power. As cannons grew more "
    "powerful, castles became less useful for defence.",
    "Marie Curie was a scientist, born in Poland, who worked in France on radioactivity, a term she helped to coin. "
    "With her husband Pierre she discovered the elements polonium and radium. She was the first woman to win a Nobel "
    "Prize and remains the only person to have won Nobel Prizes in two different sciences, physics and chemistry.",
    "Photography began in the early nineteenth century, when inventors found ways to capture images on light-"
    "sensitive plates. Early photographs needed long exposures, so people had to sit still for minutes. Film made "
    "cameras smaller and easier to use, and from the 1990s digital cameras began recording images as data. Today "
    "most photographs are taken with mobile phones.",
    "Radio sends sound through the air as electromagnetic waves. At a radio station, sound is turned into an "
    "electrical signal that changes a radio wave, which is broadcast from an antenna. A receiver picks up the wave "
    "and turns it back into sound. Guglielmo Marconi sent some of the first long-distance radio signals around 1900, "
    "and radio soon carried news, music and messages to ships at sea.",
    "Cars became common in the twentieth century. Karl Benz built one of the first practical petrol-powered cars in "
    "1885, and Henry Ford's moving assembly line made cars cheap enough for many families from 1913. Cars changed "
    "how cities were built and how people lived and worked. Electric cars, powered by batteries, are now replacing "
    "many petrol and diesel vehicles.",
    "Batteries store chemical energy and release it as electricity. Inside, chemical reactions at two electrodes "
    "push electrons around a circuit connected to the battery. Alessandro Volta built an early battery around 1800. "
    "Rechargeable lithium-ion batteries power phones, laptops and electric cars, and they can be charged many "
    "hundreds of times.",
    "Solar panels turn sunlight directly into electricity using cells made mostly of silicon. When light strikes a "
    "cell, it knocks electrons loose and creates an electric current. Solar power produces no emissions while "
    "running, and the cost of solar panels has fallen greatly. Because the Sun does not shine at night, solar power "
    "is often combined with batteries or other sources.",
    "Wind turbines turn the energy of moving air into electricity. The wind spins large blades connected to a "
    "generator, usually at the top of a tall tower where winds are stronger and steadier. Groups of turbines, called "
    "wind farms, are built on hills, open plains and at sea. Windmills were used for centuries before electricity "
    "to grind grain and pump water.",
    "Vitamins are substances the body needs in small amounts to work properly. Vitamin C, found in fruit and "
    "vegetables, helps heal wounds; vitamin D, made in the skin in sunlight, helps build strong bones; and vitamin A "
    "supports good eyesight. Long ago, sailors on long voyages suffered from scurvy until they learned that citrus "
    "fruit prevented it.",
]
